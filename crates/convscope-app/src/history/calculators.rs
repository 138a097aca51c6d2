//! The seed's calculations as small panels: editable inputs whose defaults give the figures
//! the history quotes, the formula's result, and the check against the zoo's graph with a link
//! that opens the diagram on the node where the design appears.

use convscope_core::calculators::{
    self as calc, Bottleneck, Compound, CompoundRow, Compression, CompressionFigures, Fire, GraphCheck, Growth,
    Multipliers, NetFigures, ParamBreakdown, Separable, SmallFilters, ZooLink,
};
use convscope_core::format::{grouped, human_count};

use crate::Command;

/// The VGG variants whose parameters can be broken down.
const VGGS: [&str; 5] = ["vgg11", "vgg16", "vgg19", "vgg16_bn", "vgg19_bn"];

/// Every calculator's inputs, and what took the graph to work out, kept until the inputs change.
pub struct CalculatorView {
    bottleneck: Bottleneck,
    separable: Separable,
    multipliers: Multipliers,
    small: SmallFilters,
    vgg: &'static str,
    fire: Fire,
    compression: Compression,
    compound: Compound,
    growth: Growth,
    /// Every formula against its node, worked out once.
    checks: Option<Result<Vec<GraphCheck>, String>>,
    figures: Option<(Multipliers, Result<NetFigures, String>)>,
    baseline: Option<Result<NetFigures, String>>,
    breakdown: Option<(&'static str, Result<ParamBreakdown, String>)>,
    sizes: Option<Result<CompressionFigures, String>>,
    /// The zoo's B0..B7 with the formula's networks for `compound`.
    rows: Option<(Compound, Result<Vec<CompoundRow>, String>)>,
}

impl Default for CalculatorView {
    fn default() -> Self {
        Self {
            bottleneck: Bottleneck::default(),
            separable: Separable::default(),
            multipliers: Multipliers::default(),
            small: SmallFilters::default(),
            vgg: "vgg19",
            fire: Fire::default(),
            compression: Compression::default(),
            compound: Compound::default(),
            growth: Growth::default(),
            checks: None,
            figures: None,
            baseline: None,
            breakdown: None,
            sizes: None,
            rows: None,
        }
    }
}

fn count(n: i64) -> String {
    format!("{} ({})", grouped(n), human_count(n).trim())
}

/// An integer input with its label, in a grid row.
fn int_ui(ui: &mut egui::Ui, label: &str, value: &mut i64, range: std::ops::RangeInclusive<i64>) {
    ui.label(label);
    ui.add(egui::DragValue::new(value).range(range).speed(0.2));
    ui.end_row();
}

fn link_ui(ui: &mut egui::Ui, link: ZooLink, commands: &mut Vec<Command>) {
    let text = format!("{} › {}", link.arch, link.node);
    let response = ui.link(text).on_hover_text(format!("{}: open the diagram there", link.label));
    if response.clicked() {
        commands.push(Command::ShowNode { arch: link.arch, node: link.node });
    }
}

/// The checks about `arch`, each a line: what the formula gives with the node's sizes and
/// what shape inference computes.
fn checks_ui(
    ui: &mut egui::Ui,
    checks: &Option<Result<Vec<GraphCheck>, String>>,
    arch: &str,
    commands: &mut Vec<Command>,
) {
    match checks {
        Some(Ok(checks)) => {
            let mut linked = None;
            for check in checks.iter().filter(|c| c.link.arch == arch) {
                if linked != Some(check.link) {
                    ui.horizontal_wrapped(|ui| {
                        ui.label("In the zoo:");
                        link_ui(ui, check.link, commands);
                        ui.weak(check.link.label);
                    });
                    linked = Some(check.link);
                }
                let (verdict, color) = if check.agrees() {
                    ("agree", ui.visuals().text_color())
                } else {
                    ("DIFFER", ui.visuals().error_fg_color)
                };
                ui.colored_label(
                    color,
                    format!(
                        "  {} {verdict}: the formula gives {} with its sizes ({}); shape inference {}",
                        check.quantity,
                        grouped(check.formula),
                        check.sizes,
                        grouped(check.graph)
                    ),
                );
            }
        }
        Some(Err(e)) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        None => {}
    }
}

impl CalculatorView {
    pub fn ui(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        if self.checks.is_none() {
            self.checks = Some(calc::all_checks().map_err(|e| e.to_string()));
        }
        egui::ScrollArea::vertical().id_salt("calculators").auto_shrink([false, false]).show(ui, |ui| {
            ui.weak(
                "Each figure of the story, computed. Edit the inputs; the defaults give the figures as the \
                 papers quote them. Every formula is checked against the multiply-accumulates (MACs) or \
                 parameters that shape inference gives the zoo's node where the design appears.",
            );
            self.bottleneck_ui(ui, commands);
            self.separable_ui(ui, commands);
            self.vgg_ui(ui, commands);
            self.squeezenet_ui(ui, commands);
            self.compound_ui(ui, commands);
            self.growth_ui(ui, commands);
        });
    }

    fn bottleneck_ui(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        egui::CollapsingHeader::new("Inception's 1×1 bottleneck").default_open(true).show(ui, |ui| {
            let b = &mut self.bottleneck;
            egui::Grid::new("bottleneck_inputs").num_columns(2).show(ui, |ui| {
                int_ui(ui, "input side", &mut b.size, 1..=512);
                int_ui(ui, "input channels", &mut b.in_channels, 1..=4096);
                int_ui(ui, "output maps", &mut b.out_channels, 1..=4096);
                int_ui(ui, "kernel", &mut b.kernel, 1..=11);
                int_ui(ui, "reduced to (1×1)", &mut b.reduced, 1..=4096);
            });
            let k = b.kernel;
            ui.label(format!(
                "{k}×{k} convolution on {0}×{0}×{1} to {2} maps, directly: {3} multiplies",
                b.size,
                b.in_channels,
                b.out_channels,
                count(b.direct_macs())
            ));
            ui.label(format!(
                "with a 1×1 reduction to {} first: {} for the 1×1 part + {} for the {k}×{k} = {}, {:.1}× fewer",
                b.reduced,
                count(b.reduce_macs()),
                count(b.reduced_conv_macs()),
                count(b.bottleneck_macs()),
                b.direct_macs() as f64 / b.bottleneck_macs().max(1) as f64
            ));
            for link in Bottleneck::LINKS {
                checks_ui(ui, &self.checks, link.arch, commands);
            }
        });
    }

    fn separable_ui(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        egui::CollapsingHeader::new("MobileNet's depthwise separable convolution").default_open(true).show(ui, |ui| {
            let s = &mut self.separable;
            egui::Grid::new("separable_inputs").num_columns(2).show(ui, |ui| {
                int_ui(ui, "input side", &mut s.in_size, 1..=512);
                int_ui(ui, "input channels M", &mut s.in_channels, 1..=4096);
                int_ui(ui, "kernel D_K", &mut s.kernel, 1..=11);
                int_ui(ui, "output maps N", &mut s.out_channels, 1..=4096);
                int_ui(ui, "stride", &mut s.stride, 1..=4);
                int_ui(ui, "padding", &mut s.padding, 0..=5);
            });
            let out = s.out_size();
            ui.label(format!(
                "output {out}×{out}×{}: standard {} multiplies; separable {} depthwise + {} pointwise = {}",
                s.out_channels,
                grouped(s.standard_macs()),
                grouped(s.depthwise_macs()),
                grouped(s.pointwise_macs()),
                grouped(s.separable_macs())
            ));
            ui.label(format!(
                "separable / standard = {:.4}; the paper's 1/N + 1/D_K² = 1/{} + 1/{} = {:.4}",
                s.ratio(),
                s.out_channels,
                s.kernel * s.kernel,
                s.ratio_formula()
            ));
            checks_ui(ui, &self.checks, Separable::LINK.arch, commands);

            ui.add_space(4.0);
            ui.strong("Width multiplier α and resolution multiplier ρ, on the whole MobileNet v1");
            let m = &mut self.multipliers;
            egui::Grid::new("multipliers_inputs").num_columns(2).show(ui, |ui| {
                int_ui(ui, "α (% of every layer's channels)", &mut m.width_percent, 1..=200);
                int_ui(ui, "input side (224·ρ)", &mut m.resolution, 32..=512);
            });
            let m = *m;
            if self.figures.as_ref().is_none_or(|(inputs, _)| *inputs != m) {
                self.figures = Some((m, m.figures().map_err(|e| e.to_string())));
            }
            let baseline = self
                .baseline
                .get_or_insert_with(|| Multipliers::default().figures().map_err(|e| e.to_string()))
                .clone();
            match (&self.figures, &baseline) {
                (Some((_, Ok(f))), Ok(base)) => {
                    let (alpha, rho) = (m.width_percent as f64 / 100.0, m.resolution as f64 / 224.0);
                    ui.label(format!(
                        "from the graph: {} parameters, {} MACs; against α = 1, ρ = 1: ×{:.3} parameters \
                         (α² = {:.3}), ×{:.3} MACs (α²ρ² = {:.3})",
                        count(f.params),
                        count(f.macs),
                        f.params as f64 / base.params as f64,
                        alpha * alpha,
                        f.macs as f64 / base.macs as f64,
                        alpha * alpha * rho * rho
                    ));
                    if let Some((macs, params)) = m.paper() {
                        ui.weak(format!("the paper's tables: {macs:.0} M mult-adds, {params} M parameters"));
                    }
                    if let Some(id) = m.preset() {
                        ui.horizontal(|ui| {
                            ui.weak("in the zoo as");
                            if ui.link(id).on_hover_text("open it in the explorer").clicked() {
                                commands.push(Command::OpenInExplorer(id));
                            }
                        });
                    }
                }
                (Some((_, Err(e))), _) | (_, Err(e)) => {
                    ui.colored_label(ui.visuals().error_fg_color, e);
                }
                _ => {}
            }
        });
    }

    fn vgg_ui(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        egui::CollapsingHeader::new("VGG's small filters").default_open(true).show(ui, |ui| {
            let s = &mut self.small;
            egui::Grid::new("vgg_inputs").num_columns(2).show(ui, |ui| {
                int_ui(ui, "channels C", &mut s.channels, 1..=4096);
                int_ui(ui, "stacked 3×3 layers", &mut s.stacked, 1..=6);
                int_ui(ui, "map side", &mut s.size, 1..=512);
            });
            let (stack, single) = s.coefficients();
            let rf = s.receptive_field();
            ui.label(format!(
                "{} stacked 3×3 layers see {rf}×{rf}, as one {rf}×{rf} layer does: {stack}C² against {single}C² \
                 weights, {} against {} ({:.0}% fewer), with a non-linearity between each",
                s.stacked,
                grouped(s.stacked_weights()),
                grouped(s.single_weights()),
                100.0 * (1.0 - stack as f64 / single as f64)
            ));
            ui.label(format!(
                "on a {0}×{0} map: {1} against {2} MACs",
                s.size,
                count(s.stacked_macs()),
                count(s.single_macs())
            ));
            checks_ui(ui, &self.checks, SmallFilters::LINK.arch, commands);

            ui.add_space(4.0);
            ui.horizontal(|ui| {
                ui.strong("Where the parameters live:");
                egui::ComboBox::from_id_salt("vgg_breakdown").selected_text(self.vgg).show_ui(ui, |ui| {
                    for id in VGGS {
                        ui.selectable_value(&mut self.vgg, id, id);
                    }
                });
            });
            let vgg = self.vgg;
            if self.breakdown.as_ref().is_none_or(|(arch, _)| *arch != vgg) {
                self.breakdown = Some((vgg, calc::param_breakdown(vgg).map_err(|e| e.to_string())));
            }
            match &self.breakdown {
                Some((_, Ok(b))) => {
                    let share = |n: i64| 100.0 * n as f64 / b.total.max(1) as f64;
                    ui.label(format!(
                        "{}: {} parameters; convolutions {} ({:.1}%), fully connected {} ({:.1}%){}",
                        b.arch,
                        count(b.total),
                        count(b.conv),
                        share(b.conv),
                        count(b.linear),
                        share(b.linear),
                        if b.other > 0 { format!(", batch norm {}", grouped(b.other)) } else { String::new() }
                    ));
                    ui.label(format!(
                        "the largest layer, {}, alone: {} ({:.1}%)",
                        b.largest.0,
                        count(b.largest.1),
                        share(b.largest.1)
                    ));
                }
                Some((_, Err(e))) => {
                    ui.colored_label(ui.visuals().error_fg_color, e);
                }
                None => {}
            }
        });
    }

    fn squeezenet_ui(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        egui::CollapsingHeader::new("SqueezeNet's fire module").default_open(true).show(ui, |ui| {
            let f = &mut self.fire;
            egui::Grid::new("fire_inputs").num_columns(2).show(ui, |ui| {
                int_ui(ui, "input channels", &mut f.in_channels, 1..=4096);
                int_ui(ui, "squeeze (1×1)", &mut f.squeeze, 1..=4096);
                int_ui(ui, "expand 1×1", &mut f.expand1x1, 0..=4096);
                int_ui(ui, "expand 3×3", &mut f.expand3x3, 0..=4096);
                int_ui(ui, "map side", &mut f.size, 1..=512);
            });
            ui.label(format!(
                "fire module: {} parameters, {} MACs; one 3×3 convolution to the same {} maps: {} parameters, \
                 {} MACs ({:.1}× the parameters)",
                grouped(f.fire_params()),
                count(f.fire_macs()),
                f.out_channels(),
                grouped(f.conv3x3_params()),
                count(f.conv3x3_macs()),
                f.conv3x3_params() as f64 / f.fire_params().max(1) as f64
            ));
            checks_ui(ui, &self.checks, Fire::LINK.arch, commands);

            ui.add_space(4.0);
            ui.horizontal(|ui| {
                ui.strong("The whole model's size at");
                for bits in [32, 8, 6] {
                    ui.selectable_value(&mut self.compression.bits, bits, format!("{bits} bits"));
                }
            });
            let sizes = self.sizes.get_or_insert_with(|| CompressionFigures::from_zoo().map_err(|e| e.to_string()));
            match sizes {
                Ok(figures) => {
                    let c = self.compression;
                    ui.label(format!(
                        "SqueezeNet 1.0's {} parameters at {} bits, none pruned: {:.2} MB; AlexNet's {} at 32 bits: \
                         {:.0} MB",
                        grouped(figures.squeezenet_params),
                        c.bits,
                        c.dense_megabytes(figures.squeezenet_params),
                        grouped(figures.alexnet_params),
                        Compression { bits: 32 }.dense_megabytes(figures.alexnet_params)
                    ));
                    if let (Some((mb, reduction)), Some(bits)) =
                        (c.paper(), c.paper_bits_per_param(figures.squeezenet_params))
                    {
                        ui.label(format!(
                            "the paper (Table 2): {mb} MB at {} bits, {reduction}× smaller than AlexNet's {} MB; \
                             that is {bits:.1} bits per parameter on average: Deep Compression prunes and \
                             Huffman-codes too",
                            c.bits,
                            calc::ALEXNET_PAPER_MB
                        ));
                    }
                }
                Err(e) => {
                    ui.colored_label(ui.visuals().error_fg_color, &*e);
                }
            }
        });
    }

    fn compound_ui(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        egui::CollapsingHeader::new("EfficientNet's compound scaling").default_open(true).show(ui, |ui| {
            let c = &mut self.compound;
            ui.horizontal_wrapped(|ui| {
                for (label, value) in
                    [("α (depth)", &mut c.alpha), ("β (width)", &mut c.beta), ("γ (resolution)", &mut c.gamma)]
                {
                    ui.label(label);
                    ui.add(egui::DragValue::new(value).range(1.0..=2.0).speed(0.005).max_decimals(3));
                }
                ui.label("base side");
                ui.add(egui::DragValue::new(&mut c.base_resolution).range(32..=1024));
            });
            let c = *c;
            ui.label(format!(
                "depth α^φ, width β^φ, resolution γ^φ; α·β²·γ² = {:.3}, so each step of φ multiplies the \
                 FLOPs by about {:.2}. Built with torchvision's rounding (channels to multiples of 8, blocks up):",
                c.constraint(),
                c.constraint()
            ));
            self.refresh_rows(c);
            match &self.rows {
                Some((_, Ok(rows))) => compound_table_ui(ui, rows, commands),
                Some((_, Err(e))) => {
                    ui.colored_label(ui.visuals().error_fg_color, e);
                }
                None => {}
            }
            ui.horizontal_wrapped(|ui| {
                ui.weak("The first MBConv:");
                link_ui(ui, Compound::LINK, commands);
            });
        });
    }

    /// The formula's networks for these coefficients; the zoo's B0..B7 are worked out once.
    fn refresh_rows(&mut self, c: Compound) {
        match &mut self.rows {
            Some((inputs, _)) if *inputs == c => {}
            Some((inputs, Ok(rows))) => {
                *inputs = c;
                for row in rows.iter_mut() {
                    match c.scaled(row.phi) {
                        Ok(scaled) => row.scaled = scaled,
                        Err(e) => {
                            self.rows = Some((c, Err(e.to_string())));
                            return;
                        }
                    }
                }
            }
            _ => self.rows = Some((c, c.rows().map_err(|e| e.to_string()))),
        }
    }

    fn growth_ui(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        egui::CollapsingHeader::new("DenseNet's growth rate").default_open(true).show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                for (label, preset, _) in Growth::PRESETS {
                    if ui.selectable_label(self.growth == preset, label).clicked() {
                        self.growth = preset;
                    }
                }
            });
            let g = &mut self.growth;
            egui::Grid::new("growth_inputs").num_columns(2).show(ui, |ui| {
                int_ui(ui, "growth rate k", &mut g.growth, 1..=256);
                int_ui(ui, "channels into the block k₀", &mut g.initial, 1..=4096);
                int_ui(ui, "layers in the block", &mut g.layers, 1..=64);
                int_ui(ui, "map side", &mut g.size, 1..=512);
            });
            let entering: Vec<String> = g.channels_entering().iter().map(i64::to_string).collect();
            ui.label(format!("channels entering each layer (k₀ + (i − 1)·k): {}", entering.join(", ")));
            ui.label(format!(
                "the block hands on k₀ + L·k = {} channels; its 1×1 bottlenecks (to {}·k = {}) cost {} MACs",
                g.output_channels(),
                g.bottleneck,
                g.bottleneck * g.growth,
                count(g.bottleneck_macs())
            ));
            for (_, _, link) in Growth::PRESETS {
                if let Some(link) = link {
                    checks_ui(ui, &self.checks, link.arch, commands);
                }
            }
        });
    }
}

fn compound_table_ui(ui: &mut egui::Ui, rows: &[CompoundRow], commands: &mut Vec<Command>) {
    egui::ScrollArea::horizontal().id_salt("compound_table").show(ui, |ui| {
        egui::Grid::new("compound_rows").striped(true).num_columns(18).show(ui, |ui| {
            for head in [
                "φ",
                "depth α^φ",
                "width β^φ",
                "side",
                "FLOPs ×",
                "blocks",
                "head",
                "params",
                "MACs",
                "",
                "zoo",
                "depth",
                "width",
                "side",
                "blocks",
                "head",
                "params",
                "MACs",
            ] {
                ui.strong(head);
            }
            ui.end_row();
            for row in rows {
                let (s, a) = (&row.scaled, &row.actual);
                ui.label(row.phi.to_string());
                ui.label(format!("{:.2}", s.depth));
                ui.label(format!("{:.2}", s.width));
                ui.label(s.resolution.to_string());
                ui.label(format!("{:.1}", row.flops_factor));
                ui.label(s.blocks.to_string());
                ui.label(s.head_channels.to_string());
                ui.label(human_count(s.params));
                ui.label(human_count(s.macs));
                ui.weak("|");
                if ui.link(row.actual_id).on_hover_text("open it in the explorer").clicked() {
                    commands.push(Command::OpenInExplorer(row.actual_id));
                }
                ui.label(format!("{:.1}", a.depth));
                ui.label(format!("{:.1}", a.width));
                ui.label(a.resolution.to_string());
                ui.label(a.blocks.to_string());
                ui.label(a.head_channels.to_string());
                ui.label(human_count(a.params));
                ui.label(human_count(a.macs));
                ui.end_row();
            }
        });
    });
}
