//! Gradient flow: the norm of ∂loss/∂output at every node along depth (log scale) and of
//! ∂loss/∂parameters per layer, for the current image and target; residual switches by
//! all, stage or block, with the curve before the last switch kept as a ghost; the mode
//! (inference, or a training step on a batch), the batch and the objective, each in words.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::prediction::Classification;
use crate::{Command, LoadedModel, theme};
use convscope_core::engine::GradientSettings;
use convscope_core::engine::batch::BatchKind;
use convscope_core::executor::{GradientMode, Objective};
use convscope_core::graph::{BlockKind, Graph, NodeId};
use convscope_core::session::GradientFlow;

/// The graph's residual merges, grouped the three ways the switches offer.
#[derive(Clone, Debug, Default)]
pub struct ResidualGroups {
    pub all: Vec<NodeId>,
    pub stages: Vec<(String, Vec<NodeId>)>,
    pub blocks: Vec<(String, Vec<NodeId>)>,
}

impl ResidualGroups {
    pub fn new(graph: &Graph) -> Self {
        let mut groups = Self::default();
        for node in graph.residual_nodes() {
            groups.all.push(node);
            let stage = stage_of(graph, node).map_or_else(|| "graph".to_owned(), |b| graph.blocks[b].name.clone());
            push_grouped(&mut groups.stages, stage, node);
            let block = graph.nodes[node]
                .block
                .map_or_else(|| graph.nodes[node].name.clone(), |b| graph.blocks[b].name.clone());
            push_grouped(&mut groups.blocks, block, node);
        }
        groups
    }
}

fn push_grouped(groups: &mut Vec<(String, Vec<NodeId>)>, name: String, node: NodeId) {
    match groups.iter_mut().find(|(n, _)| *n == name) {
        Some((_, nodes)) => nodes.push(node),
        None => groups.push((name, vec![node])),
    }
}

/// The nearest enclosing block of a kind, or the outermost one.
fn stage_of(graph: &Graph, node: NodeId) -> Option<usize> {
    let mut current = graph.nodes.get(node)?.block;
    let mut outermost = current;
    while let Some(id) = current {
        if graph.blocks[id].kind == BlockKind::Stage {
            return Some(id);
        }
        outermost = Some(id);
        current = graph.blocks[id].parent;
    }
    outermost
}

#[derive(Default)]
pub struct GradientView {
    pub current: Option<GradientFlow>,
    /// The curve before the last switch (of residuals or target).
    pub ghost: Option<GradientFlow>,
    /// `None`: the predicted class.
    pub target: Option<i64>,
    /// Residual merges switched off.
    pub disabled: BTreeSet<NodeId>,
    /// Mode, batch and objective as asked (defaults for the loaded weights where `None`).
    pub settings: GradientSettings,
}

impl GradientView {
    pub fn receive(&mut self, flow: GradientFlow) {
        let switched = self
            .current
            .as_ref()
            .is_some_and(|c| c.disabled != flow.disabled || c.requested_target != flow.requested_target);
        if switched {
            self.ghost = self.current.take();
        } else if self.current.is_some() {
            // Same switches on a new image or device: the old curve would mislead.
            self.ghost = None;
        }
        self.current = Some(flow);
    }

    /// The plot and its switches for the loaded model; `prediction` is the image the curve is
    /// of, `pending` whether the worker still owes a gradient pass.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        model: Option<&LoadedModel>,
        prediction: Option<&Classification>,
        pending: bool,
        selected: NodeId,
        commands: &mut Vec<Command>,
    ) {
        let Some(model) = model else { return };
        let graph = Arc::clone(&model.graph);
        let view = &*self;
        ui.horizontal_wrapped(|ui| {
            ui.heading("Gradient flow");
            target_ui(ui, view, prediction.map(|p| p.top5.as_slice()).unwrap_or(&[]), commands);
            if let Some(flow) = &view.current {
                ui.weak(format!(
                    "loss {:.4}, logit {:.3} for class {} · {} shortcut(s) off",
                    flow.loss,
                    flow.logit,
                    flow.target,
                    flow.disabled.len()
                ));
            }
            if view.current.is_some()
                && ui.button("Export CSV…").on_hover_text("Save the gradient norms per node as CSV").clicked()
            {
                commands.push(Command::ExportGradients);
            }
            // Last: a widget after it would change id while it turns, and a button new to
            // egui asks for one more frame.
            if pending {
                theme::spinner(ui);
            }
        });
        mode_ui(ui, view, model.default_gradient_mode, commands);
        if !model.residuals.all.is_empty() {
            residual_switches_ui(ui, &model.residuals, &view.disabled, commands);
        }
        let Some(current) = &view.current else {
            ui.weak(if prediction.is_some() { "computing…" } else { "Open an image to see its gradients." });
            return;
        };
        what_was_differentiated_ui(ui, current, view.settings, commands);
        // ∂L for the loss, ∂z for the target's logit.
        let of = match current.settings.options.objective {
            Objective::CrossEntropy => "L",
            Objective::Logit => "z",
        };
        let names = Arc::clone(&graph);
        let response = egui_plot::Plot::new("gradient_flow")
            .height(ui.available_height().max(140.0))
            .legend(egui_plot::Legend::default().position(egui_plot::Corner::LeftBottom))
            .allow_scroll(false)
            .x_axis_label("node (execution order)")
            .y_axis_label("gradient L2 norm")
            .y_grid_spacer(egui_plot::log_grid_spacer(10))
            .y_axis_formatter(|mark, _| format!("1e{}", mark.value.round() as i64))
            .label_formatter(move |hover| {
                let (series, point) = match hover {
                    egui_plot::HoverPosition::NearDataPoint { plot_name, position, .. } => (*plot_name, *position),
                    egui_plot::HoverPosition::Elsewhere { position } => ("", *position),
                };
                let index = point.x.round().max(0.0) as usize;
                let name = names.nodes.get(index).map_or("", |n| n.name.as_str());
                Some(format!("{name}\n{series}\n{:.3e}", 10f64.powf(point.y)))
            })
            .show(ui, |plot| {
                if let Some(ghost) = &view.ghost {
                    plot.line(
                        egui_plot::Line::new("before the switch", log_points(&ghost.node_norms))
                            .color(theme::GHOST)
                            .style(egui_plot::LineStyle::dashed_loose()),
                    );
                }
                plot.line(
                    egui_plot::Line::new(format!("|∂{of}/∂output| per node"), log_points(&current.node_norms))
                        .color(theme::ACCENT),
                );
                plot.points(
                    egui_plot::Points::new(format!("|∂{of}/∂θ| per layer"), log_points(&current.param_norms))
                        .color(theme::SECONDARY)
                        .radius(2.0),
                );
                for &node in &current.disabled {
                    plot.vline(egui_plot::VLine::new("shortcut off", node as f64).color(theme::SKIP_OFF));
                }
                plot.vline(egui_plot::VLine::new("selected node", selected as f64).color(theme::HIGHLIGHT));
            });
        // A click on the plot selects the node under the pointer.
        if response.response.clicked()
            && let Some(pos) = response.response.interact_pointer_pos()
        {
            let x = response.transform.value_from_position(pos).x.round();
            if x >= 0.0 {
                commands.push(Command::SelectNode(x as NodeId));
            }
        }
    }
}

/// The curve as a table: one row per node, empty cells where a node took no part.
pub fn gradients_csv(graph: &Graph, flow: &GradientFlow) -> String {
    let cell = |v: Option<&Option<f64>>| v.copied().flatten().map_or_else(String::new, |n| format!("{n:e}"));
    let mut csv = String::from("index,node,op,block,grad_norm,param_grad_norm\n");
    for (i, node) in graph.nodes.iter().enumerate() {
        let block = node.block.map_or("", |b| graph.blocks[b].name.as_str());
        csv.push_str(&format!(
            "{i},{},{},{block},{},{}\n",
            node.name,
            node.op.kind_name(),
            cell(flow.node_norms.get(i)),
            cell(flow.param_norms.get(i))
        ));
    }
    csv
}

/// `(node, log10 norm)` for every node with a positive norm.
pub fn log_points(norms: &[Option<f64>]) -> Vec<[f64; 2]> {
    norms
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.filter(|&n| n > 0.0 && n.is_finite()).map(|n| [i as f64, n.log10()]))
        .collect()
}

/// The mode switch beside the shortcut switches, the batch and the objective; each says in
/// words what it means when hovered.
fn mode_ui(ui: &mut egui::Ui, view: &GradientView, default_mode: GradientMode, commands: &mut Vec<Command>) {
    let settings = view.settings;
    let mode = settings.mode.unwrap_or(default_mode);
    let shown_batch = view.current.as_ref().map(|flow| flow.settings.batch);
    let ask = |commands: &mut Vec<Command>, settings: GradientSettings| {
        commands.push(Command::SetGradientSettings(settings));
    };
    ui.horizontal_wrapped(|ui| {
        ui.label("Mode:");
        for candidate in GradientMode::ALL {
            let text = if candidate == default_mode {
                format!("{} (default for these weights)", candidate.label())
            } else {
                candidate.label().to_owned()
            };
            let response = ui.selectable_label(mode == candidate, text).on_hover_text(candidate.meaning());
            if response.clicked() && mode != candidate {
                // A new mode takes its own default batch.
                ask(commands, GradientSettings { mode: Some(candidate), batch: None, ..settings });
            }
        }
        ui.separator();
        let batch = settings.batch.or(shown_batch);
        egui::ComboBox::from_label("batch")
            .selected_text(batch.map_or("default", BatchKind::label))
            .show_ui(ui, |ui| {
                for candidate in BatchKind::ALL {
                    if ui.selectable_label(batch == Some(candidate), candidate.label()).clicked() {
                        ask(commands, GradientSettings { batch: Some(candidate), ..settings });
                    }
                }
            })
            .response
            .on_hover_text(
                "Batch statistics of one image are not those of training: a training step is taken on the image \
                 among samples of the network's data.",
            );
        ui.separator();
        ui.label("Differentiate:");
        for objective in [Objective::CrossEntropy, Objective::Logit] {
            let response = ui.selectable_label(settings.objective == objective, objective.describe());
            if response.clicked() && settings.objective != objective {
                ask(commands, GradientSettings { objective, ..settings });
            }
        }
    });
}

/// One line on what the curve is the gradient of; a loss that saturated says so, with the way out.
fn what_was_differentiated_ui(
    ui: &mut egui::Ui,
    flow: &GradientFlow,
    settings: GradientSettings,
    commands: &mut Vec<Command>,
) {
    let options = flow.settings.options;
    ui.weak(format!("{} · {} · on {}", options.mode.label(), options.objective.describe(), flow.batch.description))
        .on_hover_text(options.mode.meaning());
    if flow.saturated {
        ui.horizontal_wrapped(|ui| {
            ui.colored_label(
                theme::WARNING,
                "The loss saturated: the softmax is so sure that every gradient is exactly 0, and this curve shows \
                 nothing.",
            );
            if ui.button("Differentiate the target's logit instead").clicked() {
                commands
                    .push(Command::SetGradientSettings(GradientSettings { objective: Objective::Logit, ..settings }));
            }
        });
    }
}

fn target_ui(
    ui: &mut egui::Ui,
    view: &GradientView,
    top5: &[convscope_core::engine::Prediction],
    commands: &mut Vec<Command>,
) {
    let label = match view.target {
        None => "the prediction".to_owned(),
        Some(class) => top5.iter().find(|p| p.class == class).map_or(format!("class {class}"), |p| p.label.clone()),
    };
    egui::ComboBox::from_label("target").selected_text(label).show_ui(ui, |ui| {
        if ui.selectable_label(view.target.is_none(), "the prediction").clicked() {
            commands.push(Command::SetTarget(None));
        }
        for p in top5 {
            if ui.selectable_label(view.target == Some(p.class), format!("{} ({})", p.label, p.class)).clicked() {
                commands.push(Command::SetTarget(Some(p.class)));
            }
        }
    });
    let mut class = view.target.or(view.current.as_ref().map(|c| c.target)).unwrap_or(0);
    let label = ui.label("class");
    let response = ui
        .add(egui::DragValue::new(&mut class).range(0..=i64::MAX))
        .labelled_by(label.id)
        .on_hover_text("Any class index as the gradient target");
    if response.changed() {
        commands.push(Command::SetTarget(Some(class)));
    }
}

fn residual_switches_ui(
    ui: &mut egui::Ui,
    groups: &ResidualGroups,
    disabled: &BTreeSet<NodeId>,
    commands: &mut Vec<Command>,
) {
    // A checkbox is ticked while its shortcuts are on; mixed groups show as indeterminate.
    let switch = |ui: &mut egui::Ui, name: &str, nodes: &[NodeId], commands: &mut Vec<Command>| {
        let off = nodes.iter().filter(|n| disabled.contains(n)).count();
        let mut on = off == 0;
        let checkbox = egui::Checkbox::new(&mut on, name).indeterminate(off > 0 && off < nodes.len());
        if ui.add(checkbox).on_hover_text(format!("{} residual shortcut(s)", nodes.len())).changed() {
            let mut next = disabled.clone();
            for node in nodes {
                if on {
                    next.remove(node);
                } else {
                    next.insert(*node);
                }
            }
            commands.push(Command::SetResiduals(next));
        }
    };
    ui.horizontal_wrapped(|ui| {
        ui.label("Shortcuts:");
        switch(ui, "all shortcuts", &groups.all, commands);
        if groups.stages.len() > 1 {
            ui.separator();
            for (name, nodes) in &groups.stages {
                switch(ui, name, nodes, commands);
            }
        }
    });
    egui::CollapsingHeader::new(format!("per block ({})", groups.blocks.len())).id_salt("residual_blocks").show(
        ui,
        |ui| {
            ui.horizontal_wrapped(|ui| {
                for (name, nodes) in &groups.blocks {
                    switch(ui, name, nodes, commands);
                }
            });
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use convscope_core::engine::ResolvedGradientSettings;
    use convscope_core::engine::batch::{BatchCounts, BatchSummary};

    #[test]
    fn csv_has_a_row_per_node_and_blank_cells_for_missing_norms() {
        let graph = convscope_core::zoo::lenet::lenet5();
        let n = graph.nodes.len();
        let mut node_norms = vec![Some(0.5); n];
        node_norms[0] = None;
        let flow = GradientFlow {
            arch: "lenet5",
            disabled: Vec::new(),
            requested_target: None,
            target: 3,
            loss: 1.0,
            logit: 0.5,
            settings: ResolvedGradientSettings { options: Default::default(), batch: BatchKind::Image, batch_size: 1 },
            batch: BatchSummary {
                kind: BatchKind::Image,
                counts: BatchCounts { image: 1, photos: 0, crops: 0, digits: 0 },
                description: "the image alone".into(),
            },
            saturated: false,
            node_norms,
            param_norms: vec![None; n],
            top5: Vec::new(),
            timings: Default::default(),
            device: tch::Device::Cpu,
        };
        let csv = gradients_csv(&graph, &flow);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), n + 1);
        assert_eq!(lines[1], "0,input,Input,,,");
        assert_eq!(lines[2], "1,conv1,Conv2d,features,5e-1,");
    }
}
