//! The desktop window. For now it names the loaded model, its card and, given an image,
//! the top-5; the model is built and run on a worker thread so the window never waits.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, TryRecvError, sync_channel};

use anyhow::anyhow;

use crate::engine::{self, Prediction, WeightsChoice};
use crate::executor::RunOptions;
use crate::zoo::{self, ArchSpec};

/// What `convscope` opens when no architecture is named.
pub const DEFAULT_ARCH: &str = "resnet18";

pub fn run(arch: Option<String>, image: Option<PathBuf>) -> anyhow::Result<()> {
    let spec = zoo::find(arch.as_deref().unwrap_or(DEFAULT_ARCH))?;
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default().with_inner_size([960.0, 640.0]).with_title("convscope"),
        ..Default::default()
    };
    eframe::run_native("convscope", options, Box::new(move |_cc| Ok(Box::new(App::new(spec, image)?))))
        .map_err(|e| anyhow!("could not open a window: {e}"))
}

/// What the worker sends back once the model is ready.
struct Loaded {
    weights: String,
    params: i64,
    nodes: usize,
    prediction: Option<Result<Vec<Prediction>, String>>,
}

pub struct App {
    spec: ArchSpec,
    image: Option<PathBuf>,
    pending: Option<Receiver<Result<Loaded, String>>>,
    loaded: Option<Result<Loaded, String>>,
}

impl App {
    fn new(spec: ArchSpec, image: Option<PathBuf>) -> std::io::Result<Self> {
        let (sender, receiver) = sync_channel(1);
        let (worker_spec, worker_image) = (spec.clone(), image.clone());
        std::thread::Builder::new().name("convscope-model".into()).spawn(move || {
            let result = load_and_classify(&worker_spec, worker_image.as_deref()).map_err(|e| e.to_string());
            // The window may have closed meanwhile; nobody is left to tell.
            let _ = sender.send(result);
        })?;
        Ok(Self { spec, image, pending: Some(receiver), loaded: None })
    }
}

fn load_and_classify(spec: &ArchSpec, image: Option<&std::path::Path>) -> crate::error::Result<Loaded> {
    let (model, _warnings) =
        engine::load_model(spec, &WeightsChoice::Installed { seed: engine::DEFAULT_SEED }, tch::Device::Cpu)?;
    let prediction = image.map(|path| {
        engine::image_input(spec, path)
            .and_then(|x| model.forward(&x, &RunOptions::default()))
            .and_then(|logits| engine::top_k(&logits, spec.labels, 5))
            .map_err(|e| e.to_string())
    });
    Ok(Loaded {
        weights: model.origin().to_string(),
        params: model.graph().parameter_count(),
        nodes: model.graph().nodes.len(),
        prediction,
    })
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        if let Some(receiver) = &self.pending {
            match receiver.try_recv() {
                Ok(result) => {
                    self.loaded = Some(result);
                    self.pending = None;
                }
                Err(TryRecvError::Empty) => ui.ctx().request_repaint_after(std::time::Duration::from_millis(50)),
                Err(TryRecvError::Disconnected) => {
                    self.loaded = Some(Err("the model worker stopped unexpectedly".into()));
                    self.pending = None;
                }
            }
        }
        let Self { spec, image, pending, loaded } = self;
        egui::CentralPanel::default().show(ui, |ui| {
            ui.heading(format!("{} ({})", spec.card.name, spec.card.year));
            ui.label(spec.card.authors);
            ui.label(egui::RichText::new(spec.card.paper).italics());
            ui.separator();
            ui.label(format!("Problem: {}", spec.card.problem));
            ui.label(format!("Answer: {}", spec.card.answer));
            ui.separator();
            if pending.is_some() {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("loading the model…");
                });
            }
            match loaded {
                Some(Ok(model)) => {
                    ui.label(format!(
                        "Loaded {} with {}: {} parameters, {} nodes",
                        spec.id,
                        model.weights,
                        crate::cli::grouped(model.params),
                        model.nodes
                    ));
                    if let (Some(path), Some(prediction)) = (image.as_ref(), model.prediction.as_ref()) {
                        ui.label(format!("Image: {}", path.display()));
                        match prediction {
                            Ok(top) => {
                                for p in top {
                                    ui.label(format!("{:>6.2}%  {}", p.probability * 100.0, p.label));
                                }
                            }
                            Err(e) => {
                                ui.colored_label(ui.visuals().error_fg_color, e);
                            }
                        }
                    }
                }
                Some(Err(e)) => {
                    ui.colored_label(ui.visuals().error_fg_color, format!("Could not load {}: {e}", spec.id));
                }
                None => {}
            }
        });
    }
}
