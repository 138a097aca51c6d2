//! LeNet live: a drawing pad read by LeNet-5 on every change, C1, S2, C3 and S4 answering as
//! the digit is drawn, the digit moved (sliders, or the 1993 demo's slide across the field)
//! with each class's probability against the shift, the held-out digits and LeNet's
//! mistakes one click away, and LeNet-5 trained here.
//!
//! The pad runs on `convscope_core::drawing::worker`'s thread, beside the explorer's worker:
//! one drawing in flight, only the newest waiting, so a stroke never builds a backlog.

use std::path::PathBuf;
use std::time::Instant;

use convscope_core::drawing::worker::{DigitReply, DigitWorker, DrawnDigit, LayerMaps, Reading, Samples, Sweep};
use convscope_core::drawing::{Drawing, GRID, Transform};
use convscope_core::engine::{self, WeightsChoice};
use convscope_core::session::ImageInput;
use convscope_core::train::{TrainConfig, TrainProgress, TrainReport};

use crate::command::Command;
use crate::theme;

/// Grid cells on screen, in points.
const CELL: f32 = 10.0;
/// How far the animation slides the digit each way, in pixels, and how long one sweep takes.
const ANIMATE_REACH: f32 = 12.0;
const ANIMATE_PERIOD_S: f64 = 4.0;
/// The input as LeNet sees it, in points per pixel.
const INPUT_ZOOM: f32 = 4.0;
/// Held-out digits shown per page.
const PAGE: usize = 40;
/// Latencies kept for the README's figure.
const LATENCIES_KEPT: usize = 10_000;

/// A reading as textures, made once when it lands.
struct Shown {
    reading: Reading,
    input: egui::TextureHandle,
    maps: Vec<(String, [usize; 2], egui::TextureHandle)>,
    /// Painted in a frame already: its latency is recorded.
    painted: bool,
}

/// A training run from the view: where it stands, its curves.
#[derive(Default)]
pub struct Training {
    pub last: Option<TrainProgress>,
    /// Mean loss over the epoch so far, per batch seen (x: epochs, fractional).
    pub losses: Vec<[f64; 2]>,
    /// Held-out accuracy after each epoch.
    pub held_out: Vec<[f64; 2]>,
    pub report: Option<TrainReport>,
    pub cancelled: bool,
}

pub struct DrawView {
    worker: Option<DigitWorker>,
    drawing: Drawing,
    erase: bool,
    pub(crate) transform: Transform,
    animate: bool,
    animate_from: f64,
    /// A drag on the input not yet a whole pixel.
    drag_rest: egui::Vec2,
    /// Number of the drawing and transform on the pad now; each change adds one.
    generation: u64,
    /// When each change not yet on screen happened.
    changed_at: Vec<(u64, Instant)>,
    latencies_ms: Vec<f64>,
    shown: Option<Shown>,
    /// The probability plot, which may lag the reading by a drawing or two while drawing.
    sweep: Option<Sweep>,
    pad_texture: Option<egui::TextureHandle>,
    pad_rect: Option<egui::Rect>,
    last_pen: Option<[f32; 2]>,
    samples: Option<Samples>,
    samples_asked: bool,
    sample_textures: Vec<(usize, egui::TextureHandle)>,
    page: usize,
    show_mistakes: bool,
    /// Which sample is on the pad, and its true label.
    pub(crate) sample: Option<(usize, i64)>,
    epochs: usize,
    training: Option<Training>,
    /// New weights from a finished run, in use and not saved.
    unsaved: bool,
    weights: Option<String>,
    /// The file the weights in use were saved to here, which the explorer can open.
    saved: Option<PathBuf>,
    message: Option<(String, bool)>,
}

impl Default for DrawView {
    fn default() -> Self {
        Self {
            worker: None,
            drawing: Drawing::default(),
            erase: false,
            transform: Transform::default(),
            animate: false,
            animate_from: 0.0,
            drag_rest: egui::Vec2::ZERO,
            generation: 0,
            changed_at: Vec::new(),
            latencies_ms: Vec::new(),
            shown: None,
            sweep: None,
            pad_texture: None,
            pad_rect: None,
            last_pen: None,
            samples: None,
            samples_asked: false,
            sample_textures: Vec::new(),
            page: 0,
            show_mistakes: false,
            sample: None,
            epochs: 5,
            training: None,
            unsaved: false,
            weights: None,
            saved: None,
            message: None,
        }
    }
}

impl DrawView {
    // Read-only views for tests and the latency measurement.

    /// The canvas as 28×28 bytes.
    pub fn pixels(&self) -> Vec<u8> {
        self.drawing.pixels()
    }

    /// The newest reading on screen.
    pub fn reading(&self) -> Option<&Reading> {
        self.shown.as_ref().map(|s| &s.reading)
    }

    /// The class read for the pad as it is now, once its reading is on screen.
    pub fn predicted(&self) -> Option<usize> {
        let reading = self.reading().filter(|r| r.generation == self.generation)?;
        let p = &reading.probabilities;
        (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b]))
    }

    /// Whether what is on screen is the pad as it is now.
    pub fn up_to_date(&self) -> bool {
        self.shown.as_ref().is_some_and(|s| s.painted && s.reading.generation == self.generation)
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Where the pad was drawn last frame, in screen points.
    pub fn pad_rect(&self) -> Option<egui::Rect> {
        self.pad_rect
    }

    /// Milliseconds from each change to the frame that painted its maps.
    pub fn latencies_ms(&self) -> &[f64] {
        &self.latencies_ms
    }

    /// The probability plot's points.
    pub fn sweep(&self) -> Option<&Sweep> {
        self.sweep.as_ref()
    }

    pub fn samples(&self) -> Option<&Samples> {
        self.samples.as_ref()
    }

    pub fn training(&self) -> Option<&Training> {
        self.training.as_ref()
    }

    pub fn is_training(&self) -> bool {
        self.worker.as_ref().is_some_and(DigitWorker::training)
    }

    pub fn weights(&self) -> Option<&str> {
        self.weights.as_deref()
    }

    pub fn message(&self) -> Option<&(String, bool)> {
        self.message.as_ref()
    }

    /// Starts the pad's thread the first time it is needed.
    fn worker(&mut self, ctx: &egui::Context) -> Option<&mut DigitWorker> {
        if self.worker.is_none() {
            let wake = ctx.clone();
            match DigitWorker::spawn(move || wake.request_repaint_after(theme::REPLY_WAKE)) {
                Ok(mut worker) => {
                    worker.load(WeightsChoice::Installed { seed: engine::DEFAULT_SEED });
                    self.worker = Some(worker);
                }
                Err(e) => self.message = Some((format!("the digit pad's thread did not start: {e}"), true)),
            }
        }
        self.worker.as_mut()
    }

    /// The replies landed since the last frame. Called every frame, shown or not, so that a
    /// training run's progress never waits on a full channel.
    pub(crate) fn receive(&mut self, ctx: &egui::Context) {
        let Some(worker) = self.worker.as_mut() else { return };
        let mut resend = false;
        for reply in worker.poll() {
            match reply {
                DigitReply::Loaded { origin } => {
                    self.weights = Some(origin);
                    self.saved = None;
                    resend = true;
                    self.samples_asked = false;
                }
                DigitReply::Read(reading) => self.show(ctx, *reading),
                DigitReply::Swept(sweep) => self.sweep = Some(*sweep),
                DigitReply::Training(progress) => {
                    let training = self.training.get_or_insert_with(Training::default);
                    training.last = Some(progress);
                    match progress {
                        TrainProgress::Batch { epoch, batch, batches, loss, .. } => {
                            let x = (epoch - 1) as f64 + batch as f64 / batches.max(1) as f64;
                            training.losses.push([x, loss]);
                        }
                        TrainProgress::Epoch { epoch, held_out_accuracy, .. } => {
                            training.held_out.push([epoch as f64, held_out_accuracy]);
                        }
                    }
                }
                DigitReply::Trained(report) => {
                    let training = self.training.get_or_insert_with(Training::default);
                    training.cancelled = report.is_none();
                    if let Some(report) = &report {
                        self.unsaved = true;
                        self.saved = None;
                        self.weights = Some(format!(
                            "trained here just now: held-out {:.2}% (not saved)",
                            report.test_accuracy * 100.0
                        ));
                        // The mistakes are the new network's.
                        self.samples_asked = false;
                        resend = true;
                    }
                    training.report = report;
                }
                DigitReply::Saved(path) => {
                    self.unsaved = false;
                    self.weights = Some(path.display().to_string());
                    self.saved = Some(path.clone());
                    self.message = Some((format!("saved LeNet-5's weights to {}", path.display()), false));
                }
                DigitReply::Samples(samples) => {
                    self.samples = Some(*samples);
                    self.sample_textures.clear();
                }
                DigitReply::Failed(message) => self.message = Some((message, true)),
            }
        }
        if resend {
            self.send();
        }
    }

    /// Turns a reading into textures: the input and each layer's maps.
    fn show(&mut self, ctx: &egui::Context, reading: Reading) {
        let side = reading.input_side;
        let input =
            egui::ColorImage::new([side, side], reading.input.iter().map(|&v| theme::ink(v)).collect::<Vec<_>>());
        let input = match self.shown.take() {
            Some(mut old) => {
                old.input.set(input, egui::TextureOptions::NEAREST);
                let mut maps = std::mem::take(&mut old.maps);
                for (layer, slot) in reading.maps.iter().zip(maps.iter_mut()) {
                    let (size, image) = atlas(layer);
                    slot.1 = size;
                    slot.2.set(image, egui::TextureOptions::NEAREST);
                }
                maps.truncate(reading.maps.len());
                self.shown = Some(Shown { reading, input: old.input, maps, painted: false });
                return;
            }
            None => ctx.load_texture("draw_input", input, egui::TextureOptions::NEAREST),
        };
        let maps = reading
            .maps
            .iter()
            .map(|layer| {
                let (size, image) = atlas(layer);
                let name = format!("{} ({})", layer.label, layer.node);
                let texture = ctx.load_texture(format!("draw_{}", layer.node), image, egui::TextureOptions::NEAREST);
                (name, size, texture)
            })
            .collect();
        self.shown = Some(Shown { reading, input, maps, painted: false });
    }

    /// The pad changed: a new generation, sent to be read.
    fn changed(&mut self) {
        self.generation += 1;
        self.changed_at.push((self.generation, Instant::now()));
        self.send();
    }

    fn send(&mut self) {
        let digit =
            DrawnDigit { generation: self.generation, canvas: self.drawing.pixels(), transform: self.transform };
        if let Some(worker) = self.worker.as_mut() {
            worker.read(digit);
        }
    }

    /// Called at the end of a frame that painted the view: the changes now on screen get
    /// their latency.
    fn painted(&mut self) {
        let Some(shown) = self.shown.as_mut() else { return };
        if shown.painted {
            return;
        }
        shown.painted = true;
        let generation = shown.reading.generation;
        let now = Instant::now();
        // Every change up to the one read is on screen now (the ones in between were
        // coalesced into it).
        for (_, at) in self.changed_at.iter().filter(|(g, _)| *g <= generation) {
            if self.latencies_ms.len() < LATENCIES_KEPT {
                self.latencies_ms.push(now.duration_since(*at).as_secs_f64() * 1e3);
            }
        }
        self.changed_at.retain(|(g, _)| *g > generation);
    }

    pub(crate) fn ui(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        let ctx = ui.ctx().clone();
        if self.worker(&ctx).is_none() {
            if let Some((message, _)) = &self.message {
                ui.colored_label(theme::SKIP_OFF, message);
            }
            return;
        }
        if !self.samples_asked && self.weights.is_some() {
            self.samples_asked = true;
            if let Some(worker) = self.worker.as_mut() {
                worker.samples();
            }
        }
        if self.animate {
            let t = (ctx.input(|i| i.time) - self.animate_from) / ANIMATE_PERIOD_S;
            // A triangle wave: left to right and back, at an even pace.
            let phase = (t.fract() * 2.0 - 1.0).abs() as f32;
            let shift = (ANIMATE_REACH * (2.0 * phase - 1.0)).round();
            if shift != self.transform.shift[0] {
                self.transform.shift[0] = shift;
                self.changed();
            }
            ctx.request_repaint();
        }
        egui::ScrollArea::vertical().id_salt("draw_scroll").auto_shrink([false, false]).show(ui, |ui| {
            ui.heading("LeNet live: draw a digit");
            if let Some(weights) = &self.weights {
                ui.weak(format!("LeNet-5's weights: {weights}"));
            }
            if let Some((message, is_error)) = &self.message {
                let color = if *is_error { theme::SKIP_OFF } else { theme::SKIP_ON };
                ui.colored_label(color, message);
            }
            ui.horizontal_top(|ui| {
                // Spaces, not separators: a vertical separator would take the whole height.
                ui.vertical(|ui| self.pad_ui(ui));
                ui.add_space(16.0);
                ui.vertical(|ui| self.answer_ui(ui));
                ui.add_space(16.0);
                ui.vertical(|ui| self.move_ui(ui));
            });
            ui.separator();
            self.maps_ui(ui);
            ui.separator();
            self.sweep_ui(ui);
            ui.separator();
            self.samples_ui(ui);
            ui.separator();
            self.training_ui(ui, commands);
        });
        self.painted();
    }

    fn pad_ui(&mut self, ui: &mut egui::Ui) {
        let side = CELL * GRID as f32;
        let (response, painter) = ui.allocate_painter(egui::vec2(side, side), egui::Sense::drag());
        let rect = response.rect;
        self.pad_rect = Some(rect);
        let to_grid = |pos: egui::Pos2| -> [f32; 2] {
            let p = (pos - rect.min) / CELL;
            [p.x.clamp(0.0, GRID as f32), p.y.clamp(0.0, GRID as f32)]
        };
        let mut changed = false;
        if response.is_pointer_button_down_on() {
            // Every position the pointer passed this frame, so a fast stroke stays joined.
            let positions: Vec<egui::Pos2> = ui.input(|i| {
                let mut moved: Vec<egui::Pos2> = i
                    .events
                    .iter()
                    .filter_map(|e| if let egui::Event::PointerMoved(p) = e { Some(*p) } else { None })
                    .collect();
                moved.extend(i.pointer.latest_pos());
                moved
            });
            for pos in positions {
                let point = to_grid(pos);
                if self.last_pen == Some(point) {
                    continue;
                }
                if self.drawing.drawing_stroke() {
                    self.drawing.extend_stroke(point);
                } else {
                    self.drawing.begin_stroke(point, self.erase);
                }
                self.last_pen = Some(point);
                changed = true;
            }
        } else if self.drawing.drawing_stroke() {
            self.drawing.end_stroke();
            self.last_pen = None;
        }
        if changed {
            self.sample = None;
            self.changed();
        }
        let image = egui::ColorImage::new(
            [GRID, GRID],
            self.drawing.pixels().iter().map(|&p| theme::ink(f32::from(p) / 255.0)).collect::<Vec<_>>(),
        );
        let texture = match &mut self.pad_texture {
            Some(texture) => {
                texture.set(image, egui::TextureOptions::NEAREST);
                texture.clone()
            }
            None => {
                let texture = ui.ctx().load_texture("draw_pad", image, egui::TextureOptions::NEAREST);
                self.pad_texture = Some(texture.clone());
                texture
            }
        };
        painter.image(
            texture.id(),
            rect,
            egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
            egui::Color32::WHITE,
        );
        // MNIST's 20×20 box, where a digit ends up whatever size it is drawn.
        let inner = egui::Rect::from_center_size(rect.center(), egui::vec2(20.0 * CELL, 20.0 * CELL));
        painter.rect_stroke(inner, 0.0, egui::Stroke::new(1.0, theme::GHOST), egui::StrokeKind::Inside);
        response.on_hover_text("Draw with the mouse or a pen; the digit is fitted in 20×20 and centred as MNIST's are");

        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.erase, false, "Pen");
            ui.selectable_value(&mut self.erase, true, "Eraser");
            if ui.button("Clear").clicked() {
                self.drawing.clear();
                self.sample = None;
                self.changed();
            }
            if ui.add_enabled(self.drawing.can_undo(), egui::Button::new("Undo")).clicked() && self.drawing.undo() {
                self.sample = None;
                self.changed();
            }
        });
    }

    fn move_ui(&mut self, ui: &mut egui::Ui) {
        ui.label("Move the digit (or drag the input):");
        let mut moved = false;
        let t = &mut self.transform;
        moved |= slider_ui(ui, "shift x", &mut t.shift[0], -14.0..=14.0, " px");
        moved |= slider_ui(ui, "shift y", &mut t.shift[1], -14.0..=14.0, " px");
        moved |= slider_ui(ui, "rotate", &mut t.rotate_deg, -90.0..=90.0, "°");
        moved |= slider_ui(ui, "scale", &mut t.scale, 0.4..=2.0, "×");
        ui.horizontal(|ui| {
            if ui
                .checkbox(&mut self.animate, "animate")
                .on_hover_text("Slide the digit across the field, like LeCun's 1993 demo")
                .changed()
            {
                self.animate_from = ui.input(|i| i.time);
            }
            if ui.button("Reset").clicked() {
                self.transform = Transform::default();
                self.animate = false;
                moved = true;
            }
        });
        if moved {
            self.changed();
        }
    }

    fn answer_ui(&mut self, ui: &mut egui::Ui) {
        let Some(shown) = &self.shown else {
            ui.label("Draw a digit on the pad, or pick a held-out digit below.");
            return;
        };
        let reading = &shown.reading;
        let p = &reading.probabilities;
        let best = (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap_or(0);
        let mut dragged = egui::Vec2::ZERO;
        ui.horizontal(|ui| {
            let field = INPUT_ZOOM * reading.input_side as f32;
            let response = ui
                .add(
                    egui::Image::from_texture(&shown.input)
                        .fit_to_exact_size(egui::vec2(field, field))
                        .sense(egui::Sense::drag()),
                )
                .on_hover_text(
                    "The input as LeNet-5 sees it: fitted, centred, padded to 32×32, moved. Drag it to move the digit",
                );
            if response.dragged() {
                dragged = response.drag_delta() / INPUT_ZOOM;
            }
            ui.vertical(|ui| {
                ui.heading(format!("{best}"));
                ui.label(format!("{:.1}%", p[best] * 100.0));
                if let Some((_, label)) = self.sample {
                    let verdict = if label as usize == best { "right" } else { "wrong" };
                    ui.label(format!("true label {label}: {verdict}"));
                }
                ui.weak(format!("read in {:.2} ms", reading.compute_ms));
                if reading.while_training {
                    ui.weak("with the weights of the run under way");
                }
            });
        });
        if dragged != egui::Vec2::ZERO {
            self.drag_by(dragged);
        }
        let Some(shown) = &self.shown else { return };
        let p = &shown.reading.probabilities;
        egui::Grid::new("draw_top10").num_columns(2).show(ui, |ui| {
            let mut order: Vec<usize> = (0..p.len()).collect();
            order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
            for class in order {
                ui.label(format!("digit {class}"));
                ui.add(egui::ProgressBar::new(p[class]).desired_width(160.0).text(format!("{:.1}%", p[class] * 100.0)));
                ui.end_row();
            }
        });
    }

    fn maps_ui(&mut self, ui: &mut egui::Ui) {
        let Some(shown) = &self.shown else { return };
        ui.label("Feature maps (tanh outputs, blue -1 to red +1):");
        egui::Grid::new("draw_maps").num_columns(2).spacing([24.0, 8.0]).show(ui, |ui| {
            for (i, ((name, [w, h], texture), layer)) in shown.maps.iter().zip(&shown.reading.maps).enumerate() {
                ui.vertical(|ui| {
                    ui.label(name);
                    // Each channel about as large whatever its resolution: 42 points for the
                    // 6 maps of C1 and S2, 30 for the 16 of C3 and S4.
                    let [channels, side, _] = layer.shape;
                    let tile = if channels <= 8 { 42.0 } else { 30.0 };
                    let zoom = tile / side.max(1) as f32;
                    ui.add(
                        egui::Image::from_texture(texture).fit_to_exact_size(egui::vec2(*w as f32, *h as f32) * zoom),
                    );
                });
                if i % 2 == 1 {
                    ui.end_row();
                }
            }
        });
    }

    fn sweep_ui(&mut self, ui: &mut egui::Ui) {
        let Some(sweep) = &self.sweep else { return };
        ui.label("Each class's probability as the digit slides horizontally (the line: where it is now):");
        let classes = sweep.points.first().map_or(0, |(_, p)| p.len());
        let sweep = &sweep.points;
        let shift = f64::from(self.transform.shift[0]);
        egui_plot::Plot::new("draw_sweep")
            .height(180.0)
            .include_y(0.0)
            .include_y(1.0)
            .allow_drag(false)
            .allow_zoom(false)
            .allow_scroll(false)
            .legend(egui_plot::Legend::default().position(egui_plot::Corner::RightTop))
            .show(ui, |plot| {
                for class in 0..classes {
                    let points: Vec<[f64; 2]> =
                        sweep.iter().map(|(s, p)| [f64::from(*s), f64::from(p[class])]).collect();
                    plot.line(egui_plot::Line::new(format!("P({class})"), points).color(theme::digit_class(class)));
                }
                plot.vline(egui_plot::VLine::new("shift now", shift).color(theme::HIGHLIGHT));
            });
    }

    fn samples_ui(&mut self, ui: &mut egui::Ui) {
        let Some(samples) = &self.samples else {
            ui.weak("Reading the held-out digits…");
            return;
        };
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.show_mistakes, false, "Held-out digits");
            ui.selectable_value(&mut self.show_mistakes, true, "Show me its mistakes")
                .on_hover_text("The held-out digits LeNet-5 gets wrong");
        });
        let mut picked = None;
        if self.show_mistakes {
            ui.label(format!(
                "{} of the {} held-out digits are read wrong by the weights in use:",
                samples.mistakes.len(),
                samples.held_out.len()
            ));
            let shown: Vec<(usize, String, String)> = samples
                .mistakes
                .iter()
                .filter_map(|m| {
                    let position = samples.held_out.iter().position(|s| s.index == m.index)?;
                    let text = format!("{} read as {}", m.label, m.predicted);
                    let hover = format!(
                        "row {}: a {} read as {} ({:.0}%)",
                        m.index,
                        m.label,
                        m.predicted,
                        m.probability * 100.0
                    );
                    Some((position, text, hover))
                })
                .collect();
            ui.horizontal_wrapped(|ui| {
                for (position, text, hover) in shown {
                    if self.sample_button(ui, position, &text, &hover) {
                        picked = Some(position);
                    }
                }
            });
        } else {
            let pages = samples.held_out.len().div_ceil(PAGE).max(1);
            self.page = self.page.min(pages - 1);
            ui.horizontal(|ui| {
                ui.label(format!("The {} digits `convscope train` never saw; click one:", samples.held_out.len()));
                if ui.add_enabled(self.page > 0, egui::Button::new("previous")).clicked() {
                    self.page -= 1;
                }
                ui.label(format!("page {}/{pages}", self.page + 1));
                if ui.add_enabled(self.page + 1 < pages, egui::Button::new("next")).clicked() {
                    self.page += 1;
                }
            });
            let first = self.page * PAGE;
            let shown: Vec<(usize, i64, usize)> = samples
                .held_out
                .iter()
                .enumerate()
                .skip(first)
                .take(PAGE)
                .map(|(position, s)| (position, s.label, s.index))
                .collect();
            ui.horizontal_wrapped(|ui| {
                for (position, label, index) in shown {
                    let hover = format!("held-out digit {} (row {index}): a {label}", position + 1);
                    if self.sample_button(ui, position, &label.to_string(), &hover) {
                        picked = Some(position);
                    }
                }
            });
        }
        if let Some(position) = picked {
            self.load_sample(position);
        }
    }

    /// A held-out digit's button: its picture and `text`.
    fn sample_button(&mut self, ui: &mut egui::Ui, position: usize, text: &str, hover: &str) -> bool {
        let Some(samples) = &self.samples else { return false };
        let texture = match self.sample_textures.iter().find(|(p, _)| *p == position) {
            Some((_, texture)) => texture.clone(),
            None => {
                let pixels = &samples.held_out[position].pixels;
                let image = egui::ColorImage::new(
                    [GRID, GRID],
                    pixels.iter().map(|&p| theme::ink(f32::from(p) / 255.0)).collect::<Vec<_>>(),
                );
                let texture =
                    ui.ctx().load_texture(format!("held_out_{position}"), image, egui::TextureOptions::NEAREST);
                self.sample_textures.push((position, texture.clone()));
                texture
            }
        };
        let image = egui::Image::from_texture(&texture).fit_to_exact_size(egui::vec2(28.0, 28.0));
        ui.add(egui::Button::image_and_text(image, text)).on_hover_text(hover).clicked()
    }

    /// Moves the digit by a drag on the input, whole pixels at a time as the sliders do.
    fn drag_by(&mut self, delta: egui::Vec2) {
        self.drag_rest += delta;
        let step = self.drag_rest.round();
        if step == egui::Vec2::ZERO {
            return;
        }
        self.drag_rest -= step;
        let t = &mut self.transform;
        t.shift = [(t.shift[0] + step.x).clamp(-14.0, 14.0), (t.shift[1] + step.y).clamp(-14.0, 14.0)];
        self.animate = false;
        self.changed();
    }

    /// Puts a held-out digit on the pad.
    pub(crate) fn load_sample(&mut self, position: usize) {
        let Some(sample) = self.samples.as_ref().and_then(|s| s.held_out.get(position)) else { return };
        let (index, label) = (sample.index, sample.label);
        self.drawing.set_pixels(&sample.pixels);
        self.sample = Some((index, label));
        self.changed();
    }

    fn training_ui(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        ui.label("Train LeNet-5 here, as `convscope train` does (4,000 digits, 1,000 held out):");
        let training_now = self.is_training();
        ui.horizontal(|ui| {
            let label = ui.label("epochs");
            ui.add_enabled(!training_now, egui::DragValue::new(&mut self.epochs).range(1..=100)).labelled_by(label.id);
            if training_now {
                if ui.button("Cancel training").clicked()
                    && let Some(worker) = self.worker.as_mut()
                {
                    worker.cancel_training();
                }
            } else if ui.button("Train LeNet-5").clicked() {
                let config = TrainConfig { epochs: self.epochs, ..TrainConfig::default() };
                self.training = Some(Training::default());
                if let Some(worker) = self.worker.as_mut() {
                    worker.train(config);
                }
            }
            if self.unsaved && !training_now {
                if ui.button("Save weights…").on_hover_text("Write the new weights to a file you choose").clicked() {
                    let picked = rfd::FileDialog::new()
                        .set_directory(convscope_core::paths::weights_dir())
                        .set_file_name("lenet5-drawn.safetensors")
                        .add_filter("safetensors", &["safetensors"])
                        .save_file();
                    if let Some(path) = picked {
                        self.save_to(path);
                    }
                }
                if ui.button("Back to the installed weights").clicked()
                    && let Some(worker) = self.worker.as_mut()
                {
                    worker.load(WeightsChoice::Installed { seed: engine::DEFAULT_SEED });
                    self.unsaved = false;
                }
            }
            if let Some(path) = &self.saved
                && !training_now
                && ui
                    .button("Open in the explorer")
                    .on_hover_text("LeNet-5 with these weights in the explorer, on the digit on the pad")
                    .clicked()
            {
                let rgba: Vec<u8> = self.drawing.pixels().into_iter().flat_map(|v| [v, v, v, 255]).collect();
                let image =
                    ImageInput::Pixels { name: "the pad's digit".into(), size: [GRID as u32; 2], rgba: rgba.into() };
                commands.push(Command::ExploreWeights { arch: "lenet5", weights: path.clone(), image: Some(image) });
            }
        });
        let Some(training) = &self.training else { return };
        match training.last {
            Some(TrainProgress::Batch { epoch, epochs, batch, batches, loss, accuracy }) => {
                let done = ((epoch - 1) * batches + batch) as f32 / (epochs * batches).max(1) as f32;
                ui.add(
                    egui::ProgressBar::new(done)
                        .desired_width(320.0)
                        .text(format!("epoch {epoch}/{epochs}, batch {batch}/{batches}")),
                );
                ui.label(format!("loss {loss:.4}, training accuracy {:.2}% this epoch", accuracy * 100.0));
            }
            Some(TrainProgress::Epoch { epoch, epochs, loss, held_out_accuracy }) => {
                ui.add(
                    egui::ProgressBar::new(epoch as f32 / epochs.max(1) as f32)
                        .desired_width(320.0)
                        .text(format!("epoch {epoch}/{epochs}")),
                );
                ui.label(format!("loss {loss:.4}"));
                ui.label(format!("held-out accuracy {:.2}% after epoch {epoch}", held_out_accuracy * 100.0));
            }
            None if training_now => {
                ui.horizontal(|ui| {
                    crate::theme::spinner(ui);
                    ui.label("reading the digits…");
                });
            }
            None => {}
        }
        if let Some([_, accuracy]) = training.held_out.last() {
            ui.label(format!("held-out accuracy {:.2}%", accuracy * 100.0));
        }
        if let Some(report) = &training.report {
            ui.label(format!(
                "Finished: held-out {:.2}% on {} digits, train {:.2}%, final loss {:.4}. The pad reads with these weights now.",
                report.test_accuracy * 100.0,
                report.test_samples,
                report.train_accuracy * 100.0,
                report.final_loss
            ));
        } else if training.cancelled {
            ui.label("Cancelled: the pad keeps the weights it had.");
        }
        if training.losses.len() > 1 {
            egui_plot::Plot::new("draw_training")
                .height(140.0)
                .include_y(0.0)
                .allow_drag(false)
                .allow_zoom(false)
                .allow_scroll(false)
                .legend(egui_plot::Legend::default())
                .show(ui, |plot| {
                    plot.line(egui_plot::Line::new("loss (epoch mean so far)", training.losses.clone()));
                    plot.line(egui_plot::Line::new("held-out accuracy", training.held_out.clone()));
                });
        }
    }

    /// Writes the weights in use (tests name the file; the button asks for one).
    /// Writes the weights in use to `path`, as Save weights… does with the file it is given.
    pub fn save_to(&mut self, path: PathBuf) {
        if let Some(worker) = self.worker.as_mut() {
            worker.save(path);
        }
    }
}

/// A labelled slider; true when it moved.
fn slider_ui(
    ui: &mut egui::Ui,
    label: &str,
    value: &mut f32,
    range: std::ops::RangeInclusive<f32>,
    suffix: &str,
) -> bool {
    ui.horizontal(|ui| {
        let label = ui.label(label);
        ui.add(egui::Slider::new(value, range).suffix(suffix)).labelled_by(label.id).changed()
    })
    .inner
}

/// One layer's channels side by side (8 a row), one pixel apart, in the diverging colours.
fn atlas(layer: &LayerMaps) -> ([usize; 2], egui::ColorImage) {
    let [channels, h, w] = layer.shape;
    let cols = channels.clamp(1, 8);
    let rows = channels.div_ceil(cols).max(1);
    let (width, height) = (cols * (w + 1) - 1, rows * (h + 1) - 1);
    let mut pixels = vec![theme::EXPORT_GAP; width * height];
    for c in 0..channels {
        let (ox, oy) = ((c % cols) * (w + 1), (c / cols) * (h + 1));
        for y in 0..h {
            for x in 0..w {
                pixels[(oy + y) * width + ox + x] = theme::diverging(layer.values[c * h * w + y * w + x]);
            }
        }
    }
    ([width, height], egui::ColorImage::new([width, height], pixels))
}

/// Whether a network reads a digit the pad can draw: one grey channel, 32×32 or 28×28.
pub(crate) fn takes_digits(spec: &convscope_core::zoo::ArchSpec) -> bool {
    matches!(spec.input, [1, 32, 32] | [1, 28, 28]) && spec.labels == convscope_core::zoo::Labels::Digits
}
