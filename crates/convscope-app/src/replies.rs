//! What comes back: the model worker's replies, polled once a frame, and the outcomes of the
//! clipboard and download threads.

use std::sync::Arc;
use std::sync::mpsc::TryRecvError;

use tch::Device;

use convscope_core::session::{ImageInput, Payload, Reply, Request, RequestKind};

use crate::app::{App, LoadedModel, Message};
use crate::command::Command;
use crate::picker::weights_state;
use crate::prediction::Classification;
use crate::settings::DeviceChoice;
use crate::{gradients, layers};

impl App {
    pub(crate) fn receive(&mut self, ctx: &egui::Context) {
        for reply in self.runtime.worker.poll() {
            if !self.runtime.worker.is_latest(&reply) {
                continue;
            }
            self.receive_one(ctx, reply);
        }
    }

    fn receive_one(&mut self, ctx: &egui::Context, reply: Reply) {
        let payload = match reply.result {
            Ok(payload) => payload,
            Err(error) if reply.kind == RequestKind::Attribution => {
                // Said in the view, beside the settings that caused it.
                self.runtime.attribution.failed(error.message);
                return;
            }
            Err(error) if reply.kind == RequestKind::FeatureVis => {
                self.runtime.featvis.failed(error.message);
                return;
            }
            Err(error) if reply.kind == RequestKind::TopExamples => {
                self.runtime.featvis.examples_failed(error.message);
                return;
            }
            Err(error) => {
                let text = match (reply.kind, error.image) {
                    (RequestKind::Classify, Some(image)) => format!("Could not use {image}: {}", error.message),
                    (RequestKind::Load, _) => format!("Could not load the model: {}", error.message),
                    (RequestKind::Device, _) => format!("Could not move the model: {}", error.message),
                    (RequestKind::Compare, _) => format!("Could not compare: {}", error.message),
                    (RequestKind::Measure, _) => format!("Could not measure this machine: {}", error.message),
                    _ => error.message,
                };
                self.runtime.message = Some(Message { text, is_error: true });
                if reply.kind == RequestKind::Classify {
                    // The image never reaches the screen: its round is not a latency.
                    self.runtime.stopwatch.abandon();
                }
                if reply.kind == RequestKind::Load
                    && let Some(image) = self.runtime.pending_image.take()
                    && self.runtime.model.is_some()
                {
                    // The previous model is still there: the image runs on it.
                    self.classify(image);
                }
                if reply.kind == RequestKind::Measure {
                    self.runtime.history.latency.measuring = None;
                }
                if reply.kind == RequestKind::Device {
                    // The model stayed where it was.
                    if let Some(model) = &self.runtime.model {
                        self.settings.device =
                            if model.device == Device::Cpu { DeviceChoice::Cpu } else { DeviceChoice::Cuda };
                    }
                }
                return;
            }
        };
        match payload {
            Payload::Loaded(loaded) => {
                let lab_spec = self.runtime.lab.opened_spec.as_ref().filter(|s| s.id == loaded.id);
                let Some(spec) = self.runtime.specs.iter().find(|s| s.id == loaded.id).or(lab_spec).cloned() else {
                    return;
                };
                let facts_weights = weights_state(spec.id);
                let (graph, shapes) = match self.facts(spec.id) {
                    Some(f) => (Arc::clone(&f.graph), f.shapes.clone()),
                    None => (spec.graph(), None),
                };
                if let Some(facts) = self.runtime.facts.get_mut(spec.id) {
                    facts.weights = facts_weights;
                }
                let residuals = gradients::ResidualGroups::new(&graph);
                let rt = &mut self.runtime;
                rt.layers = layers::LayerView::for_graph(&graph, &rt.layers);
                rt.gradients = gradients::GradientView { target: None, ..Default::default() };
                rt.diagram.reset();
                rt.attribution.reset();
                rt.prediction.shown = None;
                rt.message = (!loaded.warnings.is_empty())
                    .then(|| Message { text: loaded.warnings.join("\n"), is_error: false });
                rt.model = Some(LoadedModel {
                    spec,
                    graph,
                    shapes,
                    origin: loaded.origin,
                    device: loaded.device,
                    residuals,
                    default_gradient_mode: loaded.gradient_mode,
                });
                let image = rt.pending_image.take().or_else(|| rt.image.clone());
                if let Some(image) = image {
                    self.classify(image);
                }
                if let Some(node) = self.runtime.pending_node.take() {
                    self.show_node(node);
                }
            }
            Payload::Moved(device) => {
                if let Some(model) = &mut self.runtime.model {
                    model.device = device;
                }
                self.rerun();
            }
            Payload::Predicted(predicted) => {
                let rt = &mut self.runtime;
                let Some(model) = &rt.model else { return };
                if predicted.arch != model.spec.id {
                    return;
                }
                if let ImageInput::Path(path) = &predicted.image {
                    self.settings.image = Some(path.clone());
                }
                rt.image = Some(predicted.image.clone());
                rt.message = rt.message.take().filter(|m| !m.is_error);
                let mut predicted = *predicted;
                let node = rt.layers.selected;
                // The maps of the node on view came with the prediction; a node selected
                // since is asked for now. The gradient pass was queued with the image.
                let maps = match predicted.activation.take() {
                    Some(Ok(data)) if data.node == node => Some(data),
                    Some(Err(error)) => {
                        rt.message = Some(Message { text: error, is_error: true });
                        rt.stopwatch.no_maps();
                        None
                    }
                    _ => None,
                };
                rt.stopwatch.predicted(&predicted.timings, maps.is_some());
                rt.prediction.shown = Some(Classification::new(ctx, predicted));
                rt.layers.activation = None;
                match maps {
                    Some(data) => {
                        let flat = data.shape.len() != 3;
                        rt.layers.receive(data);
                        if flat {
                            rt.stopwatch.no_maps();
                        }
                    }
                    None => rt.worker.send(Request::Activation { node }),
                }
            }
            Payload::Gradients(flow) => {
                let rt = &mut self.runtime;
                let Some(model) = &rt.model else { return };
                if flow.arch != model.spec.id {
                    return;
                }
                if let Some(prediction) = &mut rt.prediction.shown {
                    prediction.top5 = flow.top5.clone();
                    prediction.timings.backward_ms = flow.timings.backward_ms;
                }
                let switched = rt.prediction.shown.as_ref().is_some_and(|p| p.disabled != flow.disabled);
                rt.stopwatch.curve(flow.timings.backward_ms);
                rt.gradients.receive(*flow);
                if switched {
                    // The maps on show were of other switches: they follow the curve's.
                    let node = rt.layers.selected;
                    rt.worker.send(Request::Activation { node });
                }
            }
            Payload::Attributed(attributed) => {
                let rt = &mut self.runtime;
                let Some(model) = &rt.model else { return };
                if attributed.arch == model.spec.id {
                    rt.attribution.receive(*attributed);
                }
            }
            Payload::TopExamples(found) => {
                let rt = &mut self.runtime;
                rt.featvis.receive_examples(rt.model.as_ref(), *found);
            }
            Payload::Visualized(visualized) => {
                let rt = &mut self.runtime;
                rt.featvis.receive(rt.model.as_ref(), *visualized);
            }
            Payload::Activation(data) => {
                let rt = &mut self.runtime;
                let Some(model) = &rt.model else { return };
                if data.arch != model.spec.id || data.node != rt.layers.selected {
                    return;
                }
                rt.layers.receive(*data);
                rt.stopwatch.maps();
            }
            Payload::Compared(comparison) => self.runtime.history.compare.receive(ctx, *comparison),
            Payload::Measured(progress) => {
                if let Some(error) = &progress.cache_error {
                    self.runtime.message =
                        Some(Message { text: format!("Could not keep the timing: {error}"), is_error: true });
                }
                self.runtime.history.latency.receive(*progress);
            }
        }
    }

    /// The clipboard's content, once the Paste button's thread has read it.
    pub(crate) fn receive_paste(&mut self) -> Vec<Command> {
        let Some(receiver) = &self.runtime.pasting else { return Vec::new() };
        let outcome = match receiver.try_recv() {
            Ok(outcome) => outcome,
            Err(TryRecvError::Empty) => return Vec::new(),
            Err(TryRecvError::Disconnected) => Err("reading the clipboard stopped unexpectedly".into()),
        };
        self.runtime.pasting = None;
        match outcome {
            Ok(pasted) => vec![Command::Paste(pasted)],
            Err(text) => {
                self.runtime.message = Some(Message { text, is_error: true });
                Vec::new()
            }
        }
    }

    /// The outcome of a weights download, once it lands.
    pub(crate) fn receive_fetch(&mut self) -> Vec<Command> {
        let Some((id, receiver)) = &self.runtime.fetching else { return Vec::new() };
        let id = *id;
        let outcome = match receiver.try_recv() {
            Ok(outcome) => outcome,
            Err(TryRecvError::Empty) => return Vec::new(),
            Err(TryRecvError::Disconnected) => Err("the download thread stopped unexpectedly".into()),
        };
        self.runtime.fetching = None;
        // The card reads the weights folder again.
        self.runtime.facts.remove(id);
        match outcome {
            Ok(source) => {
                self.runtime.message =
                    Some(Message { text: format!("Installed {id} weights from {source}"), is_error: false });
                if self.settings.arch.as_deref() == Some(id) {
                    return vec![Command::SelectArch(id)];
                }
            }
            Err(e) => self.runtime.message = Some(Message { text: e, is_error: true }),
        }
        Vec::new()
    }
}
