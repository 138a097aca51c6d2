//! The accuracy-against-cost chart (after Canziani et al. 2016): one bubble per architecture,
//! ImageNet top-1 up, cost (or the year) across, area ∝ parameters, colour by family, the
//! Pareto front as a line. Labels are placed in screen space each frame where they overlap
//! neither another label nor a bubble; those that find no room wait for a hover or a zoom.

use std::cmp::Reverse;

use egui::{Color32, Pos2, Rect, Vec2};
use egui_plot::{GridInput, GridMark, Legend, Line, Plot, PlotPoints, Points};

use convscope_core::format::human_count;
use convscope_core::history::{Entry, Top1Source, pareto_front};
use convscope_core::latency::Timing;

use crate::settings::{HistorySettings, XAxis};
use crate::{Command, theme};

/// Where networks with no ImageNet top-1 sit: a band under the lowest reported figure (50.6%).
const BAND_Y: f64 = 45.0;
/// The line between the band and the chart proper.
const BAND_TOP: f64 = 47.5;
const DEFAULT_Y: (f64, f64) = (42.0, 87.0);
/// The largest network's radius, in points; area ∝ parameters from there.
const MAX_RADIUS: f32 = 22.0;
const MIN_RADIUS: f32 = 3.0;
const LABEL_SIZE: f32 = 11.0;

/// One architecture on the chart, in plot coordinates (log₁₀ for the log axes).
#[derive(Clone, Debug, PartialEq)]
pub struct Bubble {
    pub id: &'static str,
    pub name: &'static str,
    pub x: f64,
    pub y: f64,
    /// Along the cost axis without the spread within a year: what the front compares.
    pub cost: f64,
    pub radius: f32,
    pub color: Color32,
    pub family: &'static str,
    /// The top-1 shown is from the other source than asked for (drawn hollow).
    pub fallback: bool,
    /// No ImageNet top-1 at all: in the band at the bottom.
    pub banded: bool,
    params: i64,
}

/// What the chart shows for an axis and a top-1 source.
#[derive(Clone, Debug, Default)]
pub struct ChartData {
    pub bubbles: Vec<Bubble>,
    /// Architectures left off: no latency measured for them yet.
    pub unmeasured: Vec<&'static str>,
    /// The Pareto front through the bubbles it holds, by rising cost.
    pub front: Vec<[f64; 2]>,
}

/// The chart's content: every entry with an x on this axis.
pub fn chart_data(
    entries: &[Entry],
    latency: &dyn Fn(&str) -> Option<Timing>,
    axis: XAxis,
    top1: Top1Source,
) -> ChartData {
    let max_params = entries.iter().map(|e| e.params).max().unwrap_or(1).max(1) as f32;
    let mut data = ChartData::default();
    for entry in entries {
        let cost = match axis {
            XAxis::Year => Some(f64::from(entry.year)),
            XAxis::Macs => entry.macs.map(|m| (m as f64).log10()),
            XAxis::Params => Some((entry.params.max(1) as f64).log10()),
            XAxis::Latency => latency(entry.id).map(|t| t.median_ms.max(1e-6).log10()),
        };
        let Some(cost) = cost else {
            data.unmeasured.push(entry.id);
            continue;
        };
        let shown = entry.top1(top1);
        data.bubbles.push(Bubble {
            id: entry.id,
            name: entry.name,
            x: cost,
            y: shown.map_or(BAND_Y, |t| f64::from(t.percent)),
            cost,
            radius: (MAX_RADIUS * (entry.params as f32 / max_params).sqrt()).max(MIN_RADIUS),
            color: theme::family_color(entry.family),
            family: entry.family.name(),
            fallback: shown.is_some_and(|t| t.source != top1),
            banded: shown.is_none(),
            params: entry.params,
        });
    }
    if axis == XAxis::Year {
        spread_within_years(&mut data.bubbles, entries);
    }
    let points: Vec<(f64, f64)> =
        data.bubbles.iter().map(|b| if b.banded { (f64::NAN, f64::NAN) } else { (b.cost, b.y) }).collect();
    data.front = pareto_front(&points).into_iter().map(|i| [data.bubbles[i].x, data.bubbles[i].y]).collect();
    data
}

/// Networks of one year side by side across the year's width, cheapest first, so that the
/// twenty of 2017 do not sit on one vertical line.
fn spread_within_years(bubbles: &mut [Bubble], entries: &[Entry]) {
    let macs = |id: &str| entries.iter().find(|e| e.id == id).and_then(|e| e.macs).unwrap_or(0);
    let mut years: Vec<i64> = bubbles.iter().map(|b| b.cost as i64).collect();
    years.sort_unstable();
    years.dedup();
    for year in years {
        let mut same: Vec<usize> = (0..bubbles.len()).filter(|&i| bubbles[i].cost as i64 == year).collect();
        same.sort_by_key(|&i| (macs(bubbles[i].id), bubbles[i].id));
        let n = same.len();
        for (k, i) in same.into_iter().enumerate() {
            let offset = if n == 1 { 0.0 } else { -0.38 + 0.76 * k as f64 / (n - 1) as f64 };
            bubbles[i].x = year as f64 + offset;
        }
    }
}

/// Places each label (sizes in points) beside its bubble, trying eight spots around it, in
/// priority order; a label that would overlap another label or any bubble, or leave `area`,
/// is not placed.
pub fn place_labels(bubbles: &[(Pos2, f32)], sizes: &[Vec2], order: &[usize], area: Rect) -> Vec<Option<Rect>> {
    let mut placed: Vec<Option<Rect>> = vec![None; bubbles.len()];
    let mut taken: Vec<Rect> = Vec::new();
    let hits_bubble = |rect: Rect| bubbles.iter().any(|&(center, radius)| rect.distance_to_pos(center) < radius + 1.0);
    for &i in order {
        let (c, r) = bubbles[i];
        let s = sizes[i];
        let d = r * std::f32::consts::FRAC_1_SQRT_2;
        let spots = [
            Pos2::new(c.x + r + 3.0, c.y - s.y / 2.0),
            Pos2::new(c.x - r - 3.0 - s.x, c.y - s.y / 2.0),
            Pos2::new(c.x - s.x / 2.0, c.y - r - 2.0 - s.y),
            Pos2::new(c.x - s.x / 2.0, c.y + r + 2.0),
            Pos2::new(c.x + d + 2.0, c.y - d - 2.0 - s.y),
            Pos2::new(c.x + d + 2.0, c.y + d + 2.0),
            Pos2::new(c.x - d - 2.0 - s.x, c.y - d - 2.0 - s.y),
            Pos2::new(c.x - d - 2.0 - s.x, c.y + d + 2.0),
        ];
        let free = spots.into_iter().map(|min| Rect::from_min_size(min, s)).find(|rect| {
            area.contains_rect(*rect) && !taken.iter().any(|t| t.expand(1.0).intersects(*rect)) && !hits_bubble(*rect)
        });
        if let Some(rect) = free {
            taken.push(rect);
            placed[i] = Some(rect);
        }
    }
    placed
}

/// A bubble as drawn this frame, in screen points.
#[derive(Clone, Copy, Debug)]
pub struct Drawn {
    pub id: &'static str,
    pub center: Pos2,
    pub radius: f32,
}

/// The chart's own state: what was drawn where (for hovering, clicking and the tests).
#[derive(Default)]
pub struct ChartView {
    pub drawn: Vec<Drawn>,
    pub labelled: Vec<&'static str>,
    pub hovered: Option<&'static str>,
}

/// What the chart reads besides its settings.
pub struct ChartInput<'a> {
    pub entries: &'a [Entry],
    pub latency: &'a dyn Fn(&str) -> Option<Timing>,
    /// The architecture loaded in the explorer, ringed.
    pub loaded: Option<&'static str>,
}

impl ChartView {
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        input: &ChartInput<'_>,
        settings: &HistorySettings,
        commands: &mut Vec<Command>,
    ) {
        let axis = settings.x_axis;
        let data = chart_data(input.entries, input.latency, axis, settings.top1);
        if data.bubbles.is_empty() {
            self.drawn.clear();
            ui.weak("Nothing measured on this machine yet: “Measure this machine” times every network.");
            return;
        }
        let (x_min, x_max) =
            data.bubbles.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), b| (lo.min(b.x), hi.max(b.x)));
        let margin = ((x_max - x_min) * 0.06).max(0.3);
        let text_color = ui.visuals().text_color();
        let status_height = 2.0 * ui.text_style_height(&egui::TextStyle::Body) + 12.0;
        let plot = Plot::new(("history_chart", axis as u8))
            .height((ui.available_height() - status_height).max(200.0))
            // Top left: cheap and accurate, where no network is.
            .legend(Legend::default().position(egui_plot::Corner::LeftTop))
            .default_x_bounds(x_min - margin, x_max + margin)
            .default_y_bounds(DEFAULT_Y.0, DEFAULT_Y.1)
            .x_axis_label(match axis {
                XAxis::Year => "year (networks of one year spread by cost)",
                XAxis::Macs => "multiply-accumulates per image (log)",
                XAxis::Params => "parameters (log)",
                XAxis::Latency => "forward pass on this machine, batch 1 (log)",
            })
            .y_axis_label(format!("ImageNet top-1, {}", settings.top1.label()))
            .y_axis_formatter(|mark, _| {
                if (mark.value - BAND_Y).abs() < 1e-9 {
                    "no top-1".to_owned()
                } else if mark.value < BAND_TOP {
                    String::new()
                } else {
                    format!("{:.0}%", mark.value)
                }
            })
            .label_formatter(|_| None)
            .show_x(false)
            .show_y(false);
        let plot = match axis {
            XAxis::Year => plot.x_axis_formatter(|mark, _| {
                if (mark.value - mark.value.round()).abs() < 1e-6 {
                    format!("{:.0}", mark.value)
                } else {
                    String::new()
                }
            }),
            log => plot.x_grid_spacer(decades).x_axis_formatter(move |mark, range| log_label(log, mark, range)),
        };
        let response = plot.show(ui, |plot| {
            plot.hline(egui_plot::HLine::new("", BAND_TOP).color(ui_weak(text_color)).width(0.5));
            plot.text(
                egui_plot::Text::new(
                    "",
                    egui_plot::PlotPoint::new(x_min - margin * 0.9, (BAND_Y + BAND_TOP) / 2.0 + 0.6),
                    "no ImageNet top-1 reported",
                )
                .anchor(egui::Align2::LEFT_CENTER)
                .color(ui_weak(text_color)),
            );
            if data.front.len() > 1 {
                plot.line(
                    Line::new("Pareto front", PlotPoints::from(data.front.clone()))
                        .color(text_color)
                        .width(1.5)
                        .style(egui_plot::LineStyle::dashed_loose())
                        .allow_hover(false),
                );
            }
            for bubble in &data.bubbles {
                plot.points(
                    Points::new(bubble.family, vec![[bubble.x, bubble.y]])
                        .id(("bubble", bubble.id))
                        .radius(bubble.radius)
                        // One colour per family (the legend shows it); translucent, so
                        // that bubbles under bigger ones still show.
                        .color(bubble.color.gamma_multiply(0.8))
                        .filled(!bubble.fallback)
                        .allow_hover(false),
                );
            }
        });
        let rect = response.response.rect;
        let transform = response.transform;
        self.drawn = data
            .bubbles
            .iter()
            .map(|b| Drawn {
                id: b.id,
                center: transform.position_from_point(&egui_plot::PlotPoint::new(b.x, b.y)),
                radius: b.radius,
            })
            .collect();

        let pointer = response.response.hover_pos();
        self.hovered = pointer.and_then(|p| {
            self.drawn
                .iter()
                .filter(|d| d.center.distance(p) <= d.radius.max(5.0) + 2.0)
                .min_by(|a, b| {
                    a.radius.total_cmp(&b.radius).then(a.center.distance(p).total_cmp(&b.center.distance(p)))
                })
                .map(|d| d.id)
        });

        let painter = ui.painter_at(rect);
        self.labels_ui(&painter, &data, text_color);
        for drawn in &self.drawn {
            let ring = if Some(drawn.id) == self.hovered {
                Some(egui::Stroke::new(2.0, theme::HIGHLIGHT))
            } else if Some(drawn.id) == input.loaded {
                Some(egui::Stroke::new(1.5, text_color))
            } else {
                None
            };
            if let Some(stroke) = ring {
                painter.circle_stroke(drawn.center, drawn.radius + 2.0, stroke);
            }
        }

        let hovered = self.hovered.and_then(|id| input.entries.iter().find(|e| e.id == id));
        if let Some(entry) = hovered {
            let latency = (input.latency)(entry.id);
            let facts = facts_line(entry, latency);
            let story = entry.story_line();
            let response = response.response.on_hover_ui_at_pointer(|ui| {
                ui.set_max_width(420.0);
                ui.strong(format!("{} ({}, {})", entry.name, entry.year, entry.authors));
                ui.label(egui::RichText::new(entry.paper).italics());
                ui.label(&story);
                ui.label(&facts);
                ui.weak("Click to open it in the explorer.");
            });
            if response.clicked() {
                commands.push(Command::OpenInExplorer(entry.id));
            }
            ui.label(format!("{} ({}): {story}", entry.name, entry.year));
            ui.weak(facts);
        } else {
            let hidden = data.bubbles.len() - self.labelled.len();
            ui.weak("Hover a bubble for its story and numbers; click it to open the network in the explorer.");
            ui.weak(format!(
                "Bubble area proportional to parameters; hollow: the other source's top-1 (none of this kind reported). \
                 {hidden} label(s) wait for a hover or a zoom."
            ));
        }
    }

    /// Every label that finds room, biggest networks first, the MobileNet v1 variants last.
    fn labels_ui(&mut self, painter: &egui::Painter, data: &ChartData, color: Color32) {
        let font = egui::FontId::proportional(LABEL_SIZE);
        let galleys: Vec<_> =
            data.bubbles.iter().map(|b| painter.layout_no_wrap(b.name.to_owned(), font.clone(), color)).collect();
        let mut order: Vec<usize> = (0..data.bubbles.len()).collect();
        order.sort_by_key(|&i| {
            let b = &data.bubbles[i];
            let variant = b.id.starts_with("mobilenet_v1_");
            (b.banded, variant, Reverse(b.params))
        });
        let circles: Vec<(Pos2, f32)> = self.drawn.iter().map(|d| (d.center, d.radius)).collect();
        let sizes: Vec<Vec2> = galleys.iter().map(|g| g.size()).collect();
        let placed = place_labels(&circles, &sizes, &order, painter.clip_rect().shrink(2.0));
        self.labelled.clear();
        for ((rect, galley), bubble) in placed.iter().zip(galleys).zip(&data.bubbles) {
            if let Some(rect) = rect {
                painter.galley(rect.min, galley, color);
                self.labelled.push(bubble.id);
            }
        }
    }
}

fn ui_weak(color: Color32) -> Color32 {
    color.gamma_multiply(0.5)
}

/// The numbers of a network in one line.
fn facts_line(entry: &Entry, latency: Option<Timing>) -> String {
    let top1 = |v: Option<f32>| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}%"));
    let mut parts = vec![
        format!("top-1 {} paper, {} reference weights", top1(entry.top1_paper), top1(entry.top1_reference)),
        format!("{} parameters", human_count(entry.params)),
    ];
    if let Some(macs) = entry.macs {
        parts.push(format!("{}MACs at {}×{}", human_count(macs), entry.input[1], entry.input[2]));
    }
    if let Some(t) = latency {
        parts.push(format!("{:.1} ms here", t.median_ms));
    }
    if !entry.imagenet {
        parts[0] = "not an ImageNet classifier".into();
    }
    parts.join(" · ")
}

/// Grid lines at each power of ten (thick) and at its 2× and 5× (thin), for a log₁₀ axis.
fn decades(input: GridInput) -> Vec<GridMark> {
    let (lo, hi) = input.bounds;
    if !(lo.is_finite() && hi.is_finite()) || hi - lo > 40.0 {
        return Vec::new();
    }
    let mut marks = Vec::new();
    for k in (lo.floor() as i64 - 1)..=(hi.ceil() as i64) {
        for (m, step) in [(1.0f64, 1.0), (2.0, 0.1), (5.0, 0.1)] {
            let value = k as f64 + m.log10();
            if (lo..=hi).contains(&value) {
                marks.push(GridMark { value, step_size: step });
            }
        }
    }
    marks
}

/// A log axis's tick: the quantity at 10^value, decades only unless zoomed in to two or fewer.
fn log_label(axis: XAxis, mark: GridMark, range: &std::ops::RangeInclusive<f64>) -> String {
    let decade = mark.step_size >= 1.0;
    if !decade && range.end() - range.start() > 2.0 {
        return String::new();
    }
    let value = 10f64.powf(mark.value);
    match axis {
        XAxis::Latency if value >= 1000.0 => format!("{} s", round_1_sig(value / 1000.0)),
        XAxis::Latency => format!("{} ms", round_1_sig(value)),
        _ => {
            let (scaled, unit) = if value >= 1e9 {
                (value / 1e9, " G")
            } else if value >= 1e6 {
                (value / 1e6, " M")
            } else if value >= 1e3 {
                (value / 1e3, " k")
            } else {
                (value, "")
            };
            format!("{}{unit}", round_1_sig(scaled))
        }
    }
}

/// 2.0000001 → "2", 0.5 → "0.5", 20 → "20".
fn round_1_sig(v: f64) -> String {
    let digits = if v >= 1.0 { 0 } else { (-v.log10().floor()) as usize };
    let text = format!("{v:.digits$}");
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use convscope_core::history;

    #[test]
    fn every_architecture_is_a_bubble_on_the_cost_axes() {
        let entries = history::entries();
        let none = |_: &str| None;
        for axis in [XAxis::Year, XAxis::Macs, XAxis::Params] {
            let data = chart_data(&entries, &none, axis, Top1Source::Paper);
            let ids: Vec<&str> = data.bubbles.iter().map(|b| b.id).collect();
            let zoo: Vec<&str> = convscope_core::zoo::all().iter().map(|s| s.id).collect();
            assert_eq!(ids, zoo, "{axis:?}: every zoo id, once");
            assert!(data.unmeasured.is_empty());
        }
        // Without measurements the latency axis is empty and says which are missing.
        let latency = chart_data(&entries, &none, XAxis::Latency, Top1Source::Paper);
        assert!(latency.bubbles.is_empty());
        assert_eq!(latency.unmeasured.len(), entries.len());
    }

    #[test]
    fn bubbles_grow_with_parameters_and_show_where_their_top1_comes_from() {
        let entries = history::entries();
        let data = chart_data(&entries, &|_| None, XAxis::Macs, Top1Source::Paper);
        let get = |id: &str| data.bubbles.iter().find(|b| b.id == id).cloned().expect("bubble");
        let (vgg19_bn, resnet50, lenet) = (get("vgg19_bn"), get("resnet50"), get("lenet5"));
        assert_eq!(vgg19_bn.radius, MAX_RADIUS, "the largest network");
        // Area ∝ parameters: radius² ratio = parameter ratio.
        let ratio = (resnet50.radius / vgg19_bn.radius).powi(2);
        assert!((ratio - 25_557_032.0 / 143_678_248.0).abs() < 1e-4, "{ratio}");
        assert_eq!(lenet.radius, MIN_RADIUS);
        assert!(lenet.banded && lenet.y == BAND_Y, "LeNet reads digits");
        assert!(!resnet50.fallback && resnet50.y == f64::from(77.15f32));
        assert!(get("alexnet").fallback, "torchvision's AlexNet: the reference weights' figure");
        assert!((resnet50.x - 4_089_184_256f64.log10()).abs() < 1e-12);
    }

    #[test]
    fn the_front_runs_through_the_best_for_each_cost() {
        let entries = history::entries();
        let data = chart_data(&entries, &|_| None, XAxis::Macs, Top1Source::Reference);
        assert!(data.front.len() >= 4);
        for pair in data.front.windows(2) {
            assert!(pair[1][0] > pair[0][0] && pair[1][1] > pair[0][1], "cheaper and worse, then costlier and better");
        }
        // No bubble is both cheaper and better than a point of the front.
        for point in &data.front {
            assert!(!data.bubbles.iter().any(|b| !b.banded && b.x < point[0] && b.y > point[1]));
        }
        // EfficientNet-B7 (84.1%) is the most accurate: the front ends there.
        let last = data.front.last().expect("a front");
        let b7 = data.bubbles.iter().find(|b| b.id == "efficientnet_b7").expect("b7");
        assert_eq!(*last, [b7.x, b7.y]);
    }

    #[test]
    fn measured_latencies_place_what_was_measured() {
        let entries = history::entries();
        let latency =
            |id: &str| (id == "resnet18" || id == "vgg16").then_some(Timing { median_ms: 10.0, min_ms: 9.0, runs: 3 });
        let data = chart_data(&entries, &latency, XAxis::Latency, Top1Source::Paper);
        assert_eq!(data.bubbles.iter().map(|b| b.id).collect::<Vec<_>>(), ["vgg16", "resnet18"]);
        assert_eq!(data.bubbles[0].x, 1.0, "log₁₀ of 10 ms");
        assert_eq!(data.unmeasured.len(), entries.len() - 2);
        // At equal latency the more accurate one alone is on the front.
        assert_eq!(data.front, vec![[1.0, f64::from(73.0f32)]]);
    }

    #[test]
    fn a_years_networks_spread_across_it_cheapest_first() {
        let entries = history::entries();
        let data = chart_data(&entries, &|_| None, XAxis::Year, Top1Source::Paper);
        let of_2014: Vec<&Bubble> = data.bubbles.iter().filter(|b| b.cost == 2014.0).collect();
        assert!(of_2014.len() >= 6);
        assert!(of_2014.iter().all(|b| (b.x - 2014.0).abs() <= 0.38 + 1e-9));
        let x = |id: &str| of_2014.iter().find(|b| b.id == id).map(|b| b.x).expect("2014");
        assert!(x("googlenet") < x("vgg11") && x("vgg11") < x("vgg19"), "by MACs");
    }

    #[test]
    fn placed_labels_overlap_neither_each_other_nor_a_bubble() {
        // A crowd: 60 bubbles on a small canvas, many overlapping.
        let area = Rect::from_min_size(Pos2::ZERO, egui::vec2(400.0, 300.0));
        let bubbles: Vec<(Pos2, f32)> = (0..60)
            .map(|i| {
                let t = i as f32;
                (Pos2::new(20.0 + (t * 37.0) % 360.0, 20.0 + (t * 53.0) % 260.0), 3.0 + (t * 7.0) % 15.0)
            })
            .collect();
        let sizes: Vec<Vec2> = (0..60).map(|i| egui::vec2(40.0 + (i % 5) as f32 * 12.0, 12.0)).collect();
        let order: Vec<usize> = (0..60).collect();
        let placed = place_labels(&bubbles, &sizes, &order, area);
        let rects: Vec<Rect> = placed.iter().flatten().copied().collect();
        assert!(rects.len() >= 10, "some find room: {}", rects.len());
        assert!(rects.len() < 60, "not all in such a crowd");
        for (i, a) in rects.iter().enumerate() {
            assert!(area.contains_rect(*a));
            for b in &rects[i + 1..] {
                assert!(!a.intersects(*b), "{a:?} and {b:?} overlap");
            }
            for &(center, radius) in &bubbles {
                assert!(a.distance_to_pos(center) >= radius, "{a:?} covers the bubble at {center:?}");
            }
        }
        // Alone, a label sits to the right of its bubble.
        let one = place_labels(&[(Pos2::new(100.0, 100.0), 10.0)], &[egui::vec2(30.0, 10.0)], &[0], area);
        assert_eq!(one[0], Some(Rect::from_min_size(Pos2::new(113.0, 95.0), egui::vec2(30.0, 10.0))));
    }

    #[test]
    fn log_ticks_read_as_quantities() {
        let range = 6.0..=11.0;
        let mark = |value: f64, step_size: f64| GridMark { value, step_size };
        assert_eq!(log_label(XAxis::Macs, mark(9.0, 1.0), &range), "1 G");
        assert_eq!(log_label(XAxis::Macs, mark(8.0, 1.0), &range), "100 M");
        assert_eq!(log_label(XAxis::Params, mark(5.0, 1.0), &range), "100 k");
        assert_eq!(
            log_label(XAxis::Macs, mark(2f64.log10() + 9.0, 0.1), &range),
            "",
            "thin marks unlabelled when wide"
        );
        assert_eq!(log_label(XAxis::Macs, mark(2f64.log10() + 9.0, 0.1), &(8.5..=10.0)), "2 G");
        assert_eq!(log_label(XAxis::Latency, mark(-1.0, 1.0), &range), "0.1 ms");
        assert_eq!(log_label(XAxis::Latency, mark(3.0, 1.0), &range), "1 s");
        let marks = decades(GridInput { bounds: (7.9, 10.1), base_step_size: 0.01 });
        let thick: Vec<f64> = marks.iter().filter(|m| m.step_size == 1.0).map(|m| m.value).collect();
        assert_eq!(thick, [8.0, 9.0, 10.0]);
        assert_eq!(marks.len(), 3 + 4, "2× and 5× of 10⁸ and 10⁹");
    }
}
