//! "What does this channel look for?": beside an enlarged feature map, the image that
//! maximises the channel's mean activation (`convscope_core::featvis`), or the images of
//! `LAYER_BATCH` channels from it optimised together, computed on the worker with a live
//! preview, cancellable, kept per network, weights, node, channels and settings, and saved as
//! a PNG; and the channel's top-activating examples in a set of images, searched on the worker
//! with a progress bar (images read of all), cancellable, kept per network, weights, node,
//! channel and set.

use std::collections::HashMap;

use convscope_core::featvis::examples::Source;
use convscope_core::featvis::{Objective, Settings};
use convscope_core::graph::NodeId;
use convscope_core::session::{
    ExamplesProgress, FeatvisProgress, Preview, Request, RequestKind, TopExamplesFound, Visualized,
};

use crate::app::{App, LoadedModel, Message};
use crate::command::Command;

/// Channels visualised together when the panel asks for the layer.
pub const LAYER_BATCH: i64 = 16;

/// What names a result: the network, its weights, the node, the channels and the settings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub arch: &'static str,
    pub origin: String,
    pub node: NodeId,
    pub channels: Vec<i64>,
    /// The settings written out (they hold floats, which do not hash).
    pub settings: String,
}

impl Key {
    fn new(model: &LoadedModel, node: NodeId, channels: Vec<i64>, settings: &Settings) -> Self {
        Self { arch: model.spec.id, origin: model.origin.clone(), node, channels, settings: format!("{settings:?}") }
    }
}

/// A finished result and its texture, made on first show.
pub struct Shown {
    pub visualized: Visualized,
    texture: Option<egui::TextureHandle>,
}

#[derive(Clone, Debug)]
pub enum FeatvisCommand {
    /// Visualise these channels of this node together with the view's settings.
    Start {
        node: NodeId,
        channels: Vec<i64>,
    },
    Cancel,
    /// Save the shown result as a PNG through a file dialog.
    Export,
    /// Find the top-activating examples of a channel among the bundled images (or the MNIST
    /// digits), or in a folder picked through a dialog (`None`).
    FindExamples {
        node: NodeId,
        channel: i64,
        bundled: bool,
    },
    /// Stop the search for examples under way.
    CancelExamples,
}

/// What names a search for examples: the network, its weights, the node, the channel and
/// where the images come from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExamplesKey {
    pub arch: &'static str,
    pub origin: String,
    pub node: NodeId,
    pub channel: i64,
    pub source: Source,
}

/// A finished search and its strip's texture, made on first show.
pub struct FoundExamples {
    pub found: TopExamplesFound,
    texture: Option<egui::TextureHandle>,
}

/// How many MNIST digits a digit network's search looks through.
const BUNDLED_DIGITS: usize = 1000;

pub struct FeatvisView {
    pub settings: Settings,
    /// `LAYER_BATCH` channels from the enlarged one, rather than it alone.
    pub layer: bool,
    pub cache: HashMap<Key, Shown>,
    /// What the user asked for and has not got yet: asked again if the worker set it aside
    /// for other work.
    pub wanted: Option<(Key, Settings)>,
    pub error: Option<(Key, String)>,
    /// The live preview's texture and the (request, step) it shows.
    preview: Option<((u64, usize), egui::TextureHandle)>,
    /// Searches for top-activating examples, kept; the one asked for; the last failure.
    pub examples: HashMap<ExamplesKey, FoundExamples>,
    pub examples_wanted: Option<ExamplesKey>,
    pub examples_error: Option<String>,
    /// The folder of the last search in one, offered again.
    pub folder: Option<std::path::PathBuf>,
    /// Where the images of the last search came from: the panel shows that source's.
    pub source: Option<Source>,
}

impl Default for FeatvisView {
    fn default() -> Self {
        // Previews often enough to watch the picture form, rarely enough not to slow it.
        Self {
            settings: Settings { preview_every: 8, ..Settings::default() },
            layer: false,
            cache: HashMap::new(),
            wanted: None,
            error: None,
            preview: None,
            examples: HashMap::new(),
            examples_wanted: None,
            examples_error: None,
            folder: None,
            source: None,
        }
    }
}

fn texture(ctx: &egui::Context, name: &str, preview: &Preview) -> egui::TextureHandle {
    let image = egui::ColorImage::from_rgb(preview.size, &preview.rgb);
    ctx.load_texture(name, image, egui::TextureOptions::LINEAR)
}

fn image_ui(ui: &mut egui::Ui, texture: &egui::TextureHandle, alt: String) {
    let size = texture.size_vec2();
    let width = ui.available_width().min(256.0 * size.x / size.y.max(1.0));
    ui.add(
        egui::Image::from_texture(texture)
            .fit_to_exact_size(egui::vec2(width, width * size.y / size.x.max(1.0)))
            .alt_text(alt),
    );
}

impl FeatvisView {
    pub fn receive(&mut self, model: Option<&LoadedModel>, visualized: Visualized) {
        let Some(model) = model.filter(|m| m.spec.id == visualized.arch && m.origin == visualized.origin) else {
            return;
        };
        let key = Key::new(model, visualized.node, visualized.channels.clone(), &visualized.settings);
        if self.wanted.as_ref().is_some_and(|(k, _)| *k == key) {
            self.wanted = None;
        }
        self.preview = None;
        self.cache.insert(key, Shown { visualized, texture: None });
    }

    pub fn receive_examples(&mut self, model: Option<&LoadedModel>, found: TopExamplesFound) {
        let Some(model) = model.filter(|m| m.spec.id == found.arch && m.origin == found.origin) else {
            return;
        };
        for strip in &found.strips {
            let key = ExamplesKey {
                arch: model.spec.id,
                origin: model.origin.clone(),
                node: found.node,
                channel: strip.channel,
                source: found.source.clone(),
            };
            if self.examples_wanted.as_ref() == Some(&key) {
                self.examples_wanted = None;
            }
            let only = TopExamplesFound { strips: vec![strip.clone()], ..found.clone() };
            self.examples.insert(key, FoundExamples { found: only, texture: None });
        }
    }

    pub fn examples_failed(&mut self, message: String) {
        self.examples_wanted = None;
        self.examples_error = Some(message);
    }

    /// The search kept for this channel in the source last asked about, if any.
    fn examples_for(&mut self, model: &LoadedModel, node: NodeId, channel: i64) -> Option<&mut FoundExamples> {
        let source = self.source.clone()?;
        let key = ExamplesKey { arch: model.spec.id, origin: model.origin.clone(), node, channel, source };
        self.examples.get_mut(&key)
    }

    #[allow(clippy::too_many_arguments)]
    fn examples_ui(
        &mut self,
        ui: &mut egui::Ui,
        model: &LoadedModel,
        node: NodeId,
        channel: i64,
        pending: bool,
        progress: Option<ExamplesProgress>,
        commands: &mut Vec<Command>,
    ) {
        ui.separator();
        ui.strong("Top-activating examples");
        ui.horizontal_wrapped(|ui| {
            let bundled = if model.spec.labels == convscope_core::zoo::Labels::Digits {
                "MNIST digits"
            } else {
                "Bundled images"
            };
            if ui
                .button(bundled)
                .on_hover_text("The images on which this channel peaks highest, cropped to what the peak sees")
                .clicked()
            {
                commands.push(Command::Featvis(FeatvisCommand::FindExamples { node, channel, bundled: true }));
            }
            if ui.button("Folder…").on_hover_text("Look through a folder of images").clicked() {
                commands.push(Command::Featvis(FeatvisCommand::FindExamples { node, channel, bundled: false }));
            }
        });
        if pending && self.examples_wanted.is_some() {
            ui.horizontal(|ui| {
                match progress {
                    Some(p) => {
                        let fraction = p.done as f32 / p.total.max(1) as f32;
                        ui.add(
                            egui::ProgressBar::new(fraction)
                                .desired_width(ui.available_width() - 60.0)
                                .text(format!("images {}/{}", p.done, p.total)),
                        );
                    }
                    // Listing the folder (or making the digits) before the first image.
                    None => {
                        crate::theme::spinner(ui);
                    }
                }
                if ui.button("Stop search").on_hover_text("Stop the search for examples").clicked() {
                    commands.push(Command::Featvis(FeatvisCommand::CancelExamples));
                }
            });
        }
        if let Some(message) = &self.examples_error {
            ui.colored_label(ui.visuals().error_fg_color, message);
        }
        let ctx = ui.ctx().clone();
        if let Some(shown) = self.examples_for(model, node, channel)
            && let Some(strip) = shown.found.strips.first()
        {
            let texture = shown.texture.get_or_insert_with(|| texture(&ctx, "featvis-examples", &strip.strip));
            image_ui(ui, texture, format!("channel {channel}'s top examples"));
            let values: Vec<String> = strip.values.iter().map(|v| format!("{v:.3}")).collect();
            ui.label(format!("peaks {}", values.join(", ")));
            ui.weak(format!("of {} images", shown.found.images));
        }
    }

    pub fn failed(&mut self, message: String) {
        if let Some((key, _)) = self.wanted.take() {
            self.error = Some((key, message));
        }
    }

    /// The panel beside the enlarged channel.
    #[allow(clippy::too_many_arguments)]
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        model: &LoadedModel,
        node: NodeId,
        channel: usize,
        pending: [bool; 2],
        progress: (Option<FeatvisProgress>, Option<ExamplesProgress>),
        commands: &mut Vec<Command>,
    ) {
        let [pending, examples_pending] = pending;
        let (progress, examples_progress) = progress;
        egui::ScrollArea::vertical().id_salt("featvis_scroll").show(ui, |ui| {
            self.visualise_ui(ui, model, node, channel, pending, progress, commands);
            self.examples_ui(ui, model, node, channel as i64, examples_pending, examples_progress, commands);
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn visualise_ui(
        &mut self,
        ui: &mut egui::Ui,
        model: &LoadedModel,
        node: NodeId,
        channel: usize,
        pending: bool,
        progress: Option<FeatvisProgress>,
        commands: &mut Vec<Command>,
    ) {
        let channel = channel as i64;
        ui.strong(format!("What channel {channel} looks for"));
        if self.settings.objective != Objective::Diversity {
            ui.checkbox(&mut self.layer, format!("{LAYER_BATCH} channels from here, together"))
                .on_hover_text("A batch of channels optimised in one run, one image each, in a grid");
        }
        ui.horizontal_wrapped(|ui| {
            let label = ui.label("steps");
            ui.add(egui::DragValue::new(&mut self.settings.steps).range(8..=2048)).labelled_by(label.id);
            let label = ui.label("size");
            ui.add(egui::DragValue::new(&mut self.settings.size).range(32..=512)).labelled_by(label.id);
            let label = ui.label("seed");
            ui.add(egui::DragValue::new(&mut self.settings.seed)).labelled_by(label.id);
        });
        ui.horizontal_wrapped(|ui| {
            ui.radio_value(&mut self.settings.objective, Objective::Maximise, "positive")
                .on_hover_text("The image that excites the channel most");
            ui.radio_value(&mut self.settings.objective, Objective::Minimise, "negative")
                .on_hover_text("The image that drives it lowest");
            ui.radio_value(&mut self.settings.objective, Objective::Diversity, "diversity")
                .on_hover_text("Four images kept apart by Lucid's diversity term");
        });
        let channels = self.channels(model, node, channel);
        let key = Key::new(model, node, channels.clone(), &self.settings);
        let running = pending && self.wanted.as_ref().is_some_and(|(k, _)| *k == key);
        ui.horizontal(|ui| {
            if running {
                if ui.button("Stop").on_hover_text("Stop the optimisation").clicked() {
                    commands.push(Command::Featvis(FeatvisCommand::Cancel));
                }
            } else if !self.cache.contains_key(&key)
                && ui
                    .button("Visualise")
                    .on_hover_text("Optimise an image to maximise this channel's mean activation (Lucid's recipe)")
                    .clicked()
            {
                commands.push(Command::Featvis(FeatvisCommand::Start { node, channels }));
            }
            if self.cache.contains_key(&key)
                && ui.button("Save PNG…").on_hover_text("Save the image as a PNG").clicked()
            {
                commands.push(Command::Featvis(FeatvisCommand::Export));
            }
        });
        if let Some((failed, message)) = &self.error
            && *failed == key
        {
            ui.colored_label(ui.visuals().error_fg_color, message);
        }
        if let Some(shown) = self.cache.get_mut(&key) {
            let v = &shown.visualized;
            let texture = shown
                .texture
                .get_or_insert_with(|| texture(ui.ctx(), &format!("featvis-{}-{:?}", v.node, v.channels), &v.image));
            image_ui(ui, texture, format!("what channel {channel} looks for"));
            let activations: Vec<String> = v.activations.iter().map(|a| format!("{a:.3}")).collect();
            if v.channels.len() > 1 {
                let first = v.channels.first().copied().unwrap_or_default();
                ui.weak(format!("channels {first}–{}, left to right, row by row", first + v.channels.len() as i64 - 1));
            }
            ui.label(format!("mean activation {}", activations.join(", ")));
            ui.weak(format!("{} steps in {:.1} s", v.settings.steps, v.compute_ms / 1e3));
        } else if running {
            match progress {
                Some(p) => {
                    ui.add(
                        egui::ProgressBar::new(p.step as f32 / p.steps.max(1) as f32)
                            .text(format!("step {}/{}, activation {:.3}", p.step, p.steps, p.activation)),
                    );
                    if let Some(image) = &p.preview {
                        let stamp = (p.seq, p.step - p.step % self.settings.preview_every.max(1));
                        if self.preview.as_ref().is_none_or(|(s, _)| *s != stamp) {
                            self.preview = Some((stamp, texture(ui.ctx(), "featvis-preview", image)));
                        }
                    }
                    if let Some((_, texture)) = &self.preview {
                        image_ui(ui, texture, format!("channel {channel}, in progress"));
                    }
                }
                None => {
                    crate::theme::spinner(ui);
                }
            }
        }
    }
}

impl FeatvisView {
    /// What the panel visualises from `channel`: it alone (also for diversity, four images of
    /// it), or `LAYER_BATCH` channels from it, within the node's.
    fn channels(&self, model: &LoadedModel, node: NodeId, channel: i64) -> Vec<i64> {
        if !self.layer || self.settings.objective == Objective::Diversity {
            return vec![channel];
        }
        let count = model.shapes.as_ref().and_then(|s| s.nodes.get(node)).and_then(|n| n.shape.first().copied());
        let end = count.map_or(channel + 1, |c| (channel + LAYER_BATCH).min(c));
        (channel..end).collect()
    }
}

impl App {
    /// Asks again for what the user wants if the worker set it aside (a new image or an
    /// attribution came first) and it has not come back.
    pub(crate) fn featvis_frame(&mut self) {
        self.examples_frame();
        let rt = &mut self.runtime;
        let Some((key, settings)) = rt.featvis.wanted.clone() else { return };
        let Some(model) = &rt.model else { return };
        if model.spec.id != key.arch || model.origin != key.origin || rt.featvis.cache.contains_key(&key) {
            rt.featvis.wanted = None;
            return;
        }
        if !rt.worker.is_pending(RequestKind::FeatureVis) {
            rt.worker.send(Request::FeatureVis { node: key.node, channels: key.channels, settings });
        }
    }

    /// The same for the search for examples.
    fn examples_frame(&mut self) {
        let rt = &mut self.runtime;
        let Some(key) = rt.featvis.examples_wanted.clone() else { return };
        let Some(model) = &rt.model else { return };
        if model.spec.id != key.arch || model.origin != key.origin || rt.featvis.examples.contains_key(&key) {
            rt.featvis.examples_wanted = None;
            return;
        }
        if !rt.worker.is_pending(RequestKind::TopExamples) {
            let ExamplesKey { node, channel, source, .. } = key;
            rt.worker.send(Request::TopExamples { node, channels: vec![channel], source });
        }
    }

    pub(crate) fn apply_featvis(&mut self, command: FeatvisCommand) {
        let rt = &mut self.runtime;
        match command {
            FeatvisCommand::Start { node, channels } => {
                let Some(model) = &rt.model else { return };
                let settings = rt.featvis.settings.clone();
                let key = Key::new(model, node, channels.clone(), &settings);
                rt.featvis.error = None;
                rt.featvis.preview = None;
                rt.featvis.wanted = Some((key, settings.clone()));
                rt.worker.send(Request::FeatureVis { node, channels, settings });
            }
            FeatvisCommand::FindExamples { node, channel, bundled } => {
                let source = if bundled {
                    Source::Bundled { digits: BUNDLED_DIGITS }
                } else {
                    let mut dialog = rfd::FileDialog::new();
                    if let Some(folder) = &rt.featvis.folder {
                        dialog = dialog.set_directory(folder);
                    }
                    // rfd returns at once with None where no desktop portal runs.
                    let Some(folder) = dialog.pick_folder() else { return };
                    rt.featvis.folder = Some(folder.clone());
                    Source::Folder(folder)
                };
                self.find_examples(node, channel, source);
            }
            FeatvisCommand::CancelExamples => {
                rt.featvis.examples_wanted = None;
                rt.worker.cancel_examples();
            }
            FeatvisCommand::Cancel => {
                rt.featvis.wanted = None;
                rt.worker.cancel_featvis();
            }
            FeatvisCommand::Export => {
                let Some(shown) = self.featvis_shown() else { return };
                let v = &shown.visualized;
                let first = v.channels.first().copied().unwrap_or_default();
                let which = if v.channels.len() > 1 {
                    format!("c{first}-{}", first + v.channels.len() as i64 - 1)
                } else {
                    format!("c{first}")
                };
                let name = format!("{}_node{}_{which}_{}.png", v.arch, v.node, v.settings.objective.id());
                // rfd returns at once with None where no desktop portal runs.
                let Some(path) = rfd::FileDialog::new().set_file_name(name).add_filter("PNG", &["png"]).save_file()
                else {
                    return;
                };
                self.runtime.message = Some(match self.save_featvis(&path) {
                    Ok(text) => Message { text, is_error: false },
                    Err(text) => Message { text, is_error: true },
                });
            }
        }
    }

    /// The result for the enlarged channel (or the channels from it) with the view's settings,
    /// if there is one.
    pub fn featvis_shown(&self) -> Option<&Shown> {
        let rt = &self.runtime;
        let model = rt.model.as_ref()?;
        let channel = rt.layers.enlarged? as i64;
        let node = rt.layers.selected;
        let channels = rt.featvis.channels(model, node, channel);
        rt.featvis.cache.get(&Key::new(model, node, channels, &rt.featvis.settings))
    }

    /// Writes the shown result to `path` as a PNG.
    pub fn save_featvis(&self, path: &std::path::Path) -> Result<String, String> {
        let shown = self.featvis_shown().ok_or("no visualisation is shown")?;
        let image = &shown.visualized.image;
        let rgb = image::RgbImage::from_raw(image.size[0] as u32, image.size[1] as u32, image.rgb.clone())
            .ok_or("the image's size does not match its pixels")?;
        rgb.save(path).map_err(|e| format!("Could not save {}: {e}", path.display()))?;
        Ok(format!("Saved {}", path.display()))
    }

    /// Asks for the top-activating examples of `channel` in `source`, unless they are kept.
    pub fn find_examples(&mut self, node: NodeId, channel: i64, source: Source) {
        let rt = &mut self.runtime;
        let Some(model) = &rt.model else { return };
        let key =
            ExamplesKey { arch: model.spec.id, origin: model.origin.clone(), node, channel, source: source.clone() };
        rt.featvis.examples_error = None;
        rt.featvis.source = Some(source.clone());
        rt.featvis.examples_wanted = Some(key.clone());
        if rt.featvis.examples.contains_key(&key) {
            rt.featvis.examples_wanted = None;
        } else {
            rt.worker.send(Request::TopExamples { node, channels: vec![channel], source });
        }
    }

    /// The top-activating examples the panel shows for the enlarged channel, if any.
    pub fn featvis_examples(&mut self) -> Option<&TopExamplesFound> {
        let rt = &mut self.runtime;
        let model = rt.model.as_ref()?;
        let channel = rt.layers.enlarged? as i64;
        rt.featvis.examples_for(model, rt.layers.selected, channel).map(|f| &f.found)
    }

    /// The feature-visualisation panel's state, for tests and the shell.
    pub fn featvis_view_mut(&mut self) -> &mut FeatvisView {
        &mut self.runtime.featvis
    }
}
