//! What is kept between runs, in eframe's storage (RON), and how it is read back.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tch::Device;

use convscope_core::history::Top1Source;
use convscope_core::session::Retention;

/// What is kept between runs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Settings {
    pub arch: Option<String>,
    pub device: DeviceChoice,
    pub image: Option<PathBuf>,
    pub show_picker: bool,
    pub show_prediction: bool,
    pub show_gradients: bool,
    pub central: CentralView,
    pub theme: ThemeChoice,
    /// Feature maps normalised per channel (else over the whole layer).
    pub per_channel: bool,
    /// How many channels the grid shows at most.
    pub channel_limit: usize,
    /// Which outputs of a run stay in memory for the layer view.
    pub retention: Retention,
    /// The History view's choices.
    pub history: HistorySettings,
}

impl Settings {
    /// The settings eframe saved, or the defaults with a notice for the user when they
    /// cannot be read: a damaged file, or one written by a version whose settings this one
    /// does not understand. Either way the app starts.
    pub fn from_storage(storage: Option<&dyn eframe::Storage>) -> (Self, Option<String>) {
        let Some(saved) = storage.and_then(|s| s.get_string(eframe::APP_KEY)) else {
            return (Self::default(), None);
        };
        // eframe writes them as RON (`eframe::set_value`); reading them here rather than
        // through `eframe::get_value` keeps the reason, which that function only logs.
        match ron::from_str::<Self>(&saved) {
            Ok(settings) => (settings, None),
            Err(e) => (
                Self::default(),
                Some(format!(
                    "The saved settings could not be read ({e}), perhaps from another version of \
                     convscope: the defaults are used and replace them on exit."
                )),
            ),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            arch: None,
            device: DeviceChoice::Cpu,
            image: None,
            show_picker: true,
            show_prediction: true,
            show_gradients: true,
            central: CentralView::FeatureMaps,
            theme: ThemeChoice::System,
            per_channel: true,
            channel_limit: 64,
            retention: Retention::EveryLayer,
            history: HistorySettings::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum DeviceChoice {
    #[default]
    Cpu,
    Cuda,
}

impl DeviceChoice {
    pub fn device(self) -> Device {
        match self {
            DeviceChoice::Cpu => Device::Cpu,
            DeviceChoice::Cuda => Device::Cuda(0),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "CPU",
            DeviceChoice::Cuda => "CUDA",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum ThemeChoice {
    #[default]
    System,
    Light,
    Dark,
}

impl ThemeChoice {
    pub(crate) fn preference(self) -> egui::ThemePreference {
        match self {
            ThemeChoice::System => egui::ThemePreference::System,
            ThemeChoice::Light => egui::ThemePreference::Light,
            ThemeChoice::Dark => egui::ThemePreference::Dark,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum CentralView {
    #[default]
    FeatureMaps,
    Diagram,
    /// Accuracy against cost, the seed's calculations, two networks side by side.
    History,
    /// Plain and residual networks trained side by side, live.
    Lab,
    /// Where the network looks: attribution maps over the image.
    Attribution,
    /// LeNet live: a digit drawn and read as it is drawn (shown for digit networks).
    Draw,
}

/// What the History view shows.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct HistorySettings {
    pub tab: HistoryTab,
    pub x_axis: XAxis,
    pub top1: Top1Source,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum HistoryTab {
    #[default]
    Chart,
    Calculations,
    Compare,
}

/// The chart's horizontal axis: when, or what it costs.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum XAxis {
    Year,
    /// Multiply-accumulates of one forward pass, log scale.
    #[default]
    Macs,
    /// Parameters, log scale.
    Params,
    /// This machine's measured forward time, log scale.
    Latency,
}

impl XAxis {
    pub const ALL: [XAxis; 4] = [XAxis::Year, XAxis::Macs, XAxis::Params, XAxis::Latency];

    pub fn label(self) -> &'static str {
        match self {
            XAxis::Year => "year",
            XAxis::Macs => "GMACs (log)",
            XAxis::Params => "parameters (log)",
            XAxis::Latency => "latency here (log)",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// eframe's storage, in memory.
    #[derive(Default)]
    struct MemoryStorage(HashMap<String, String>);

    impl eframe::Storage for MemoryStorage {
        fn get_string(&self, key: &str) -> Option<String> {
            self.0.get(key).cloned()
        }

        fn set_string(&mut self, key: &str, value: String) {
            self.0.insert(key.to_owned(), value);
        }

        fn remove_string(&mut self, key: &str) {
            self.0.remove(key);
        }

        fn flush(&mut self) {}
    }

    fn saved(text: &str) -> MemoryStorage {
        let mut storage = MemoryStorage::default();
        eframe::Storage::set_string(&mut storage, eframe::APP_KEY, text.to_owned());
        storage
    }

    #[test]
    fn saved_settings_come_back_as_saved() {
        let settings = Settings {
            arch: Some("resnet50".into()),
            theme: ThemeChoice::Dark,
            central: CentralView::Diagram,
            channel_limit: 12,
            history: HistorySettings { tab: HistoryTab::Compare, x_axis: XAxis::Latency, top1: Top1Source::Reference },
            ..Settings::default()
        };
        let mut storage = MemoryStorage::default();
        eframe::set_value(&mut storage, eframe::APP_KEY, &settings);
        assert_eq!(Settings::from_storage(Some(&storage)), (settings, None));
        assert_eq!(Settings::from_storage(None), (Settings::default(), None), "a first start says nothing");
    }

    #[test]
    fn unreadable_settings_give_the_defaults_and_a_notice() {
        for (what, text) in [
            ("cut short", r#"(arch: Some("resnet"#),
            ("not RON at all", "\u{0}\u{1}garbage"),
            ("JSON from elsewhere", r#"{"arch": "resnet20", "theme": "Dark"}"#),
            ("a view an older version had", "(arch: Some(\"resnet20\"), central: Table)"),
            ("a field of another type", "(channel_limit: \"many\")"),
        ] {
            let (settings, notice) = Settings::from_storage(Some(&saved(text)));
            assert_eq!(settings, Settings::default(), "{what}: the defaults");
            let notice = notice.unwrap_or_else(|| panic!("{what}: a notice"));
            assert!(notice.contains("saved settings could not be read"), "{what}: {notice}");
        }
    }

    #[test]
    fn settings_with_fields_missing_or_unknown_keep_what_they_can() {
        let (settings, notice) =
            Settings::from_storage(Some(&saved("(arch: Some(\"resnet20\"), per_channel: false, from_the_future: 3)")));
        assert_eq!(notice, None);
        assert_eq!(settings.arch.as_deref(), Some("resnet20"));
        assert!(!settings.per_channel);
        assert_eq!(settings.channel_limit, Settings::default().channel_limit);
    }
}
