//! The History view: the story convscope teaches as data, in three tabs.
//!
//! - `chart`: every architecture's ImageNet top-1 against its cost (or its year), with the
//!   latencies measured on this machine and the Pareto front.
//! - `calculators`: the seed's calculations, live, each checked against the zoo's graph.
//! - `compare`: two networks on one image, side by side.

mod calculators;
mod chart;
mod compare;

use tch::Device;

use convscope_core::history::{self, Entry, Top1Source};
use convscope_core::latency::{self, Machine, Timing};
use convscope_core::session::{MeasureProgress, MeasureState};
use convscope_core::zoo::ArchSpec;

use crate::Command;
use crate::settings::{HistorySettings, HistoryTab, XAxis};

pub use chart::Drawn;
pub use compare::CompareView;

/// The timings of this machine and a measurement under way.
#[derive(Default)]
pub struct Latency {
    /// Where the timings are kept (`paths::latency_cache`, or a test's own file).
    pub path: std::path::PathBuf,
    /// Read from `path` the first time the chart shows.
    cache: Option<latency::Cache>,
    /// The machine timings are looked up for, and the device it was worked out for.
    machine: Option<(Device, Machine)>,
    /// libtorch's threads on the model worker, which times the networks: the UI thread's count
    /// is not the one the timings were taken with.
    pub threads: Option<usize>,
    pub measuring: Option<Measuring>,
    /// Networks that could not be timed in the last measurement, with why.
    pub failures: Vec<(&'static str, String)>,
}

/// A measurement's progress as the last reply gave it.
#[derive(Clone, Debug, PartialEq)]
pub struct Measuring {
    pub done: usize,
    pub total: usize,
    pub last: Option<&'static str>,
}

impl Latency {
    /// What timings depend on, on `device` (cheap: /proc and a thread count).
    pub fn machine(&mut self, device: Device) -> &Machine {
        let threads = self.threads;
        let here = move || {
            let machine = Machine::current(device);
            Machine { threads: threads.unwrap_or(machine.threads), ..machine }
        };
        if self.machine.as_ref().is_none_or(|(d, _)| *d != device) {
            self.machine = Some((device, here()));
        }
        // Just set above.
        &self.machine.get_or_insert_with(|| (device, here())).1
    }

    fn cache(&mut self) -> &mut latency::Cache {
        let path = &self.path;
        self.cache.get_or_insert_with(|| latency::Cache::load(path))
    }

    /// This machine's timing of `id`, if it has been measured.
    pub fn timing(&mut self, device: Device, id: &str) -> Option<Timing> {
        let machine = self.machine(device).clone();
        self.cache().timing(&machine, id)
    }

    /// How many architectures are measured on `device` as the machine is now.
    pub fn measured(&mut self, device: Device) -> usize {
        let machine = self.machine(device).clone();
        self.cache().table(&machine).map_or(0, |t| t.timings.len())
    }

    /// A step of the measurement: its timing joins the table (the worker has saved it).
    pub fn receive(&mut self, progress: MeasureProgress) {
        let MeasureProgress { machine, timed, done, total, state, .. } = progress;
        if let Some((id, outcome)) = timed {
            match outcome {
                Ok(timing) => self.cache().record(&machine, id, timing),
                Err(message) => self.failures.push((id, message)),
            }
            if let Some(measuring) = &mut self.measuring {
                *measuring = Measuring { done, total, last: Some(id) };
            }
        }
        if state != MeasureState::Running {
            self.measuring = None;
        }
    }
}

/// What the History view reads besides its settings.
pub struct HistoryInput<'a> {
    pub specs: &'a [ArchSpec],
    pub device: Device,
    pub loaded: Option<&'static str>,
    /// The image a comparison runs on.
    pub image: Option<String>,
    pub compare_pending: bool,
}

#[derive(Default)]
pub struct HistoryView {
    /// Every architecture's facts, worked out the first time the view shows.
    entries: Option<Vec<Entry>>,
    pub latency: Latency,
    pub chart: chart::ChartView,
    pub calculators: calculators::CalculatorView,
    pub compare: CompareView,
}

impl HistoryView {
    pub fn entries(&mut self) -> &[Entry] {
        self.entries.get_or_insert_with(history::entries)
    }

    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        settings: &mut HistorySettings,
        input: &HistoryInput<'_>,
        commands: &mut Vec<Command>,
    ) {
        ui.horizontal_wrapped(|ui| {
            ui.selectable_value(&mut settings.tab, HistoryTab::Chart, "Accuracy against cost");
            ui.selectable_value(&mut settings.tab, HistoryTab::Calculations, "The calculations");
            ui.selectable_value(&mut settings.tab, HistoryTab::Compare, "Compare two networks");
        });
        ui.separator();
        match settings.tab {
            HistoryTab::Chart => self.chart_tab_ui(ui, settings, input, commands),
            HistoryTab::Calculations => self.calculators.ui(ui, commands),
            HistoryTab::Compare => self.compare.ui(ui, input, commands),
        }
    }

    fn chart_tab_ui(
        &mut self,
        ui: &mut egui::Ui,
        settings: &mut HistorySettings,
        input: &HistoryInput<'_>,
        commands: &mut Vec<Command>,
    ) {
        let total = self.entries().len();
        let measured = self.latency.measured(input.device);
        ui.horizontal_wrapped(|ui| {
            ui.label("across:");
            for axis in XAxis::ALL {
                ui.selectable_value(&mut settings.x_axis, axis, axis.label());
            }
            ui.separator();
            ui.label("top-1:");
            ui.selectable_value(&mut settings.top1, Top1Source::Paper, "paper")
                .on_hover_text("ImageNet top-1 as each paper reports it");
            ui.selectable_value(&mut settings.top1, Top1Source::Reference, "reference weights")
                .on_hover_text("ImageNet top-1 of the reference implementation's pretrained weights");
        });
        ui.horizontal_wrapped(|ui| self.measure_ui(ui, input.device, measured, total, commands));
        let Self { entries, latency, chart, .. } = self;
        let entries = entries.get_or_insert_with(history::entries);
        let device = input.device;
        let machine = latency.machine(device).clone();
        let cache = latency.cache();
        let table = cache.table(&machine);
        let timing = |id: &str| table.and_then(|t| t.timings.get(id).copied());
        let chart_input = chart::ChartInput { entries, latency: &timing, loaded: input.loaded };
        chart.ui(ui, &chart_input, settings, commands);
    }

    fn measure_ui(
        &mut self,
        ui: &mut egui::Ui,
        device: Device,
        measured: usize,
        total: usize,
        commands: &mut Vec<Command>,
    ) {
        if let Some(measuring) = &self.latency.measuring {
            let text = match measuring.last {
                Some(last) => format!("{}/{} timed, last {last}", measuring.done, measuring.total),
                None => format!("timing the first of {}…", measuring.total),
            };
            let fraction = measuring.done as f32 / measuring.total.max(1) as f32;
            ui.add(egui::ProgressBar::new(fraction).text(text).desired_width(320.0));
            if ui.button("Cancel").on_hover_text("Stop measuring; what is timed stays").clicked() {
                commands.push(Command::CancelMeasure);
            }
            return;
        }
        let machine = self.latency.machine(device).describe();
        let (label, again) = if measured == 0 { ("Measure this machine", false) } else { ("Measure again", true) };
        if measured > 0 && measured < total {
            let rest = ui.button(format!("Measure the other {}", total - measured));
            if rest.on_hover_text("Time the architectures not measured yet").clicked() {
                commands.push(Command::MeasureMachine { again: false });
            }
        }
        let hint = "Time every architecture's forward pass (batch 1, native input, random weights) on the \
                    current device, one at a time on the model worker; the timings are kept until the \
                    machine, the thread count or libtorch changes";
        if ui.button(label).on_hover_text(hint).clicked() {
            commands.push(Command::MeasureMachine { again });
        }
        ui.weak(format!("{measured}/{total} measured on {machine}"));
        if !self.latency.failures.is_empty() {
            let list: Vec<String> = self.latency.failures.iter().map(|(id, why)| format!("{id}: {why}")).collect();
            ui.colored_label(ui.visuals().warn_fg_color, format!("{} could not run", list.len()))
                .on_hover_text(list.join("\n"));
        }
    }

    /// Where a bubble was drawn last frame, in screen points.
    pub fn bubble(&self, id: &str) -> Option<Drawn> {
        self.chart.drawn.iter().find(|d| d.id == id).copied()
    }

    pub fn hovered(&self) -> Option<&'static str> {
        self.chart.hovered
    }

    pub fn labelled(&self) -> &[&'static str] {
        &self.chart.labelled
    }

    /// The architectures a measurement times: every one (again) or those not measured yet,
    /// cheapest first so that the chart fills quickly.
    pub fn measurement_ids(&mut self, device: Device, again: bool) -> Vec<&'static str> {
        let mut entries: Vec<(i64, &'static str)> =
            self.entries().iter().map(|e| (e.macs.unwrap_or(0), e.id)).collect();
        entries.sort();
        let ids: Vec<&'static str> = entries.into_iter().map(|(_, id)| id).collect();
        if again {
            return ids;
        }
        ids.into_iter().filter(|id| self.latency.timing(device, id).is_none()).collect()
    }
}
