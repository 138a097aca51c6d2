//! The architecture drawn with the painter inside an `egui::Scene` (pan, zoom, fit).
//!
//! A block of a family's signature kind (a bottleneck, an Inception module, a dense layer, a
//! fire module, an MBConv…) starts collapsed to one box and expands in place with a click.
//! Boxes sit in rows by their depth from the input, so parallel branches land side by side;
//! residual shortcuts bypass their block as arcs on the right, red when switched off.
//! The layout is computed once per architecture and expansion state.

use std::collections::{BTreeSet, HashMap};

use super::{Command, LoadedModel, Runtime, theme};
use crate::cli::human_count;
use crate::graph::{BlockId, BlockKind, EdgeKind, Graph, NodeId, Op};
use crate::shapes::ShapeReport;

const BOX_SIZE: egui::Vec2 = egui::vec2(170.0, 26.0);
const ROW_GAP: f32 = 18.0;
const COLUMN_GAP: f32 = 24.0;
/// Height of an expanded block's title, above its first row.
const FRAME_HEADER: f32 = 20.0;
const FRAME_PAD: f32 = 6.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Unit {
    Node(NodeId),
    Block(BlockId),
}

struct Layout {
    units: Vec<Unit>,
    rects: Vec<egui::Rect>,
    /// Per unit: its text, fill and hover, made once rather than every frame.
    labels: Vec<String>,
    fills: Vec<egui::Color32>,
    hovers: Vec<String>,
    /// Per unit: the nodes it stands for.
    members: Vec<Vec<NodeId>>,
    /// `(from unit, to unit, kind, consumer node)`.
    edges: Vec<(usize, usize, EdgeKind, NodeId)>,
    /// Each node's unit.
    unit_of: Vec<usize>,
    /// Frames of expanded blocks with something inside to frame.
    frames: Vec<(BlockId, egui::Rect)>,
    bounds: egui::Rect,
}

pub struct DiagramView {
    expanded: BTreeSet<BlockId>,
    layout: Option<Layout>,
    layout_key: Option<(String, BTreeSet<BlockId>)>,
    scene_rect: egui::Rect,
    fit_requested: bool,
    follow: Option<NodeId>,
    /// Where the canvas was drawn this frame, in points; `None` when the diagram is hidden.
    canvas_rect: Option<egui::Rect>,
    /// Screen points per layout point, as last drawn.
    zoom: f32,
}

impl Default for DiagramView {
    fn default() -> Self {
        Self {
            expanded: BTreeSet::new(),
            layout: None,
            layout_key: None,
            scene_rect: egui::Rect::NOTHING,
            fit_requested: true,
            follow: None,
            canvas_rect: None,
            zoom: 1.0,
        }
    }
}

impl DiagramView {
    pub fn reset(&mut self) {
        *self = Self { fit_requested: true, ..Self::default() };
    }

    pub fn request_fit(&mut self) {
        self.fit_requested = true;
    }

    /// Called before each frame draws: a diagram not drawn has no canvas to export.
    pub fn forget_canvas(&mut self) {
        self.canvas_rect = None;
    }

    pub fn canvas_rect(&self) -> Option<egui::Rect> {
        self.canvas_rect
    }

    /// Brings a node into view the next time the diagram is drawn.
    pub fn follow(&mut self, node: NodeId) {
        self.follow = Some(node);
    }

    fn layout(&mut self, graph: &Graph, shapes: Option<&ShapeReport>) -> &Layout {
        if self.layout_key.as_ref().is_none_or(|(arch, _)| *arch != graph.arch) {
            self.expanded = default_expanded(graph);
        }
        let key = (graph.arch.clone(), self.expanded.clone());
        if self.layout_key.as_ref() != Some(&key) || self.layout.is_none() {
            self.layout = Some(compute_layout(graph, shapes, &self.expanded));
            self.layout_key = Some(key);
        }
        // Just set above when missing.
        self.layout.get_or_insert_with(|| compute_layout(graph, shapes, &BTreeSet::new()))
    }
}

/// Containers are open from the start; the blocks that carry a family's idea are closed.
fn default_expanded(graph: &Graph) -> BTreeSet<BlockId> {
    graph
        .blocks
        .iter()
        .enumerate()
        .filter(|(_, b)| {
            matches!(
                b.kind,
                BlockKind::Stem | BlockKind::Stage | BlockKind::Head | BlockKind::Features | BlockKind::Classifier
            )
        })
        .map(|(i, _)| i)
        .collect()
}

/// The outermost collapsed block holding a node, else the node itself.
fn unit_for(graph: &Graph, node: NodeId, expanded: &BTreeSet<BlockId>) -> Unit {
    let mut chain = Vec::new();
    let mut current = graph.nodes[node].block;
    while let Some(b) = current {
        chain.push(b);
        current = graph.blocks[b].parent;
    }
    chain.iter().rev().find(|b| !expanded.contains(b)).map_or(Unit::Node(node), |&b| Unit::Block(b))
}

fn compute_layout(graph: &Graph, shapes: Option<&ShapeReport>, expanded: &BTreeSet<BlockId>) -> Layout {
    let mut units: Vec<Unit> = Vec::new();
    let mut index: HashMap<Unit, usize> = HashMap::new();
    let mut unit_of = Vec::with_capacity(graph.nodes.len());
    for node in 0..graph.nodes.len() {
        let unit = unit_for(graph, node, expanded);
        let i = *index.entry(unit).or_insert_with(|| {
            units.push(unit);
            units.len() - 1
        });
        unit_of.push(i);
    }
    let mut edges = Vec::new();
    let mut seen = BTreeSet::new();
    for (id, node) in graph.nodes.iter().enumerate() {
        for edge in &node.inputs {
            let (from, to) = (unit_of[edge.from], unit_of[id]);
            if from != to && seen.insert((from, to, edge.kind as u8)) {
                edges.push((from, to, edge.kind, id));
            }
        }
    }
    // Rows by longest path from the input; residual shortcuts do not push rows down, so a
    // block's body and its merge stay in one column.
    let mut row = vec![0usize; units.len()];
    for &(from, to, kind, _) in &edges {
        if kind != EdgeKind::Residual && from < to {
            row[to] = row[to].max(row[from] + 1);
        }
    }
    for &(from, to, kind, _) in &edges {
        if kind == EdgeKind::Residual && from < to {
            row[to] = row[to].max(row[from] + 1);
        }
    }
    let rows = row.iter().copied().max().unwrap_or(0) + 1;
    let mut by_row: Vec<Vec<usize>> = vec![Vec::new(); rows];
    for (u, &r) in row.iter().enumerate() {
        by_row[r].push(u);
    }
    // Each expanded block frames the units inside it; `spans` holds its first and last row.
    let inside = |unit: &Unit, b: BlockId| match unit {
        Unit::Node(n) => graph.nodes[*n].block.is_some_and(|nb| graph.block_within(nb, b)),
        Unit::Block(inner) => graph.block_within(*inner, b),
    };
    let spans: Vec<(BlockId, usize, usize)> = expanded
        .iter()
        .filter_map(|&b| {
            let rows_in = units.iter().enumerate().filter(|(_, u)| inside(u, b)).map(|(i, _)| row[i]);
            let (first, last) = rows_in.fold((usize::MAX, 0), |(lo, hi), r| (lo.min(r), hi.max(r)));
            (first != usize::MAX).then_some((b, first, last))
        })
        .collect();
    // Room above a row for the headers of the frames opening there, and below the frames
    // closing before it, so nested frames never cover a box.
    let mut y = Vec::with_capacity(rows);
    let mut cursor = 0.0;
    for r in 0..rows {
        if r > 0 {
            cursor += BOX_SIZE.y + ROW_GAP;
            cursor += FRAME_PAD * spans.iter().filter(|s| s.2 == r - 1).count() as f32;
        }
        cursor += FRAME_HEADER * spans.iter().filter(|s| s.1 == r).count() as f32;
        y.push(cursor);
    }
    let x = columns(&by_row, &row, &edges);
    let mut rects = vec![egui::Rect::NOTHING; units.len()];
    for (r, units_in_row) in by_row.iter().enumerate() {
        for &u in units_in_row {
            rects[u] = egui::Rect::from_center_size(egui::pos2(x[u], y[r]), BOX_SIZE);
        }
    }
    let mut frames = Vec::new();
    for &(b, first, last) in &spans {
        let rect = units
            .iter()
            .zip(&rects)
            .filter(|(unit, _)| inside(unit, b))
            .fold(egui::Rect::NOTHING, |acc, (_, r)| acc.union(*r));
        let inner = || spans.iter().filter(move |s| s.0 != b && graph.block_within(s.0, b));
        let opening = inner().filter(|s| s.1 == first).count() as f32;
        let closing = inner().filter(|s| s.2 == last).count() as f32;
        // How many frames nest inside this one, for its side margins.
        let depth = inner().map(|s| inner().filter(|t| graph.block_within(s.0, t.0)).count()).max().unwrap_or(0) as f32;
        let side = FRAME_PAD * (depth + 1.0);
        frames.push((
            b,
            egui::Rect::from_min_max(
                egui::pos2(rect.min.x - side, rect.min.y - FRAME_HEADER * (opening + 1.0) + 2.0),
                egui::pos2(rect.max.x + side, rect.max.y + FRAME_PAD * (closing + 1.0)),
            ),
        ));
    }
    let bounds = rects.iter().fold(egui::Rect::NOTHING, |acc, r| acc.union(*r)).expand(40.0);
    let mut members: Vec<Vec<NodeId>> = vec![Vec::new(); units.len()];
    for (node, &unit) in unit_of.iter().enumerate() {
        members[unit].push(node);
    }
    let (mut labels, mut fills, mut hovers) = (Vec::new(), Vec::new(), Vec::new());
    for (unit, nodes) in units.iter().zip(&members) {
        let (label, fill, hover) = describe(graph, shapes, *unit, nodes);
        labels.push(label);
        fills.push(fill);
        hovers.push(hover);
    }
    Layout { units, rects, labels, fills, hovers, members, edges, unit_of, frames, bounds }
}

/// Each unit's x, row by row: under the mean of what feeds it, so a branch keeps its column
/// from its fork to its merge and a merge sits between its branches; boxes that would
/// overlap are pushed apart as little as possible. A side branch (an auxiliary classifier)
/// leans right, so the trunk stays straight.
fn columns(by_row: &[Vec<usize>], row: &[usize], edges: &[(usize, usize, EdgeKind, NodeId)]) -> Vec<f32> {
    let spacing = BOX_SIZE.x + COLUMN_GAP;
    let mut feeds: Vec<Vec<(usize, EdgeKind)>> = vec![Vec::new(); row.len()];
    for &(from, to, kind, _) in edges {
        if row[from] < row[to] {
            feeds[to].push((from, kind));
        }
    }
    let mut x = vec![0.0f32; row.len()];
    // Fed by auxiliary edges only: on a side branch.
    let mut aux = vec![false; row.len()];
    for units in by_row {
        let mut wanted: Vec<(f32, usize)> = units
            .iter()
            .map(|&u| {
                let from = &feeds[u];
                let mean = from.iter().map(|&(f, _)| x[f]).sum::<f32>() / from.len().max(1) as f32;
                aux[u] = !from.is_empty() && from.iter().all(|&(_, kind)| kind == EdgeKind::Aux);
                // Only where the side branch leaves the trunk; after that it runs straight.
                let leaves = aux[u] && from.iter().all(|&(f, _)| !aux[f]);
                (if leaves { mean + spacing } else { mean }, u)
            })
            .collect();
        // Ties keep execution order: a fork's branches stay in the order they were built.
        wanted.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let placed = spread(&wanted.iter().map(|w| w.0).collect::<Vec<_>>(), spacing);
        for (&(_, u), px) in wanted.iter().zip(placed) {
            x[u] = px;
        }
    }
    x
}

/// Positions as near the wanted ones (sorted) as boxes `spacing` apart allow: boxes that
/// would touch form a cluster, centred where its members want to be on average.
fn spread(wanted: &[f32], spacing: f32) -> Vec<f32> {
    // (first member, members, x of the first)
    let mut clusters: Vec<(usize, usize, f32)> = Vec::new();
    for (i, &w) in wanted.iter().enumerate() {
        clusters.push((i, 1, w));
        while let [.., (first, count, left), (_, next_count, next_left)] = clusters[..] {
            if left + count as f32 * spacing <= next_left + 1e-3 {
                break;
            }
            clusters.truncate(clusters.len() - 2);
            let members = count + next_count;
            let left = (first..first + members).map(|j| wanted[j] - (j - first) as f32 * spacing).sum::<f32>()
                / members as f32;
            clusters.push((first, members, left));
        }
    }
    clusters.iter().flat_map(|&(_, count, left)| (0..count).map(move |j| left + j as f32 * spacing)).collect()
}

/// A unit's box text, fill colour and hover text.
fn describe(
    graph: &Graph,
    shapes: Option<&ShapeReport>,
    unit: Unit,
    members: &[NodeId],
) -> (String, egui::Color32, String) {
    let count = |f: fn(&crate::shapes::NodeInfo) -> i64| {
        human_count(members.iter().filter_map(|&n| shapes.and_then(|s| s.nodes.get(n))).map(f).sum())
    };
    match unit {
        Unit::Node(n) => {
            let node = &graph.nodes[n];
            let shape =
                shapes.and_then(|s| s.nodes.get(n)).map_or_else(String::new, |i| format!("\noutput {:?}", i.shape));
            let hover = format!(
                "{}\n{}{shape}\n{} params · {} MACs\nclick to show its feature maps",
                node.name,
                node.op.kind_name(),
                count(|i| i.params),
                count(|i| i.macs)
            );
            (format!("{} · {}", short(&node.name), node.op.kind_name()), theme::op_color(&node.op), hover)
        }
        Unit::Block(b) => {
            let block = &graph.blocks[b];
            // A block takes the colour of its first weighted layer: depthwise, pointwise or full.
            let fill = members
                .iter()
                .map(|&n| &graph.nodes[n].op)
                .find(|op| matches!(op, Op::Conv2d(_) | Op::Linear { .. }))
                .map_or(theme::op_color(&Op::Flatten), theme::op_color);
            let hover = format!(
                "{} ({:?})\n{} nodes · {} params · {} MACs\nclick to expand",
                block.name,
                block.kind,
                members.len(),
                count(|i| i.params),
                count(|i| i.macs)
            );
            (format!("+ {} · {:?}", short(&block.name), block.kind), fill, hover)
        }
    }
}

pub fn diagram_ui(ui: &mut egui::Ui, rt: &mut Runtime, commands: &mut Vec<Command>) {
    let Some(model) = &rt.model else {
        ui.weak("Loading the model…");
        return;
    };
    ui.horizontal_wrapped(|ui| {
        if ui.button("Fit").on_hover_text("Fit the diagram to the view (F)").clicked() {
            rt.diagram.fit_requested = true;
        }
        if ui.button("Collapse all").on_hover_text("Close every block to one box").clicked() {
            rt.diagram.expanded = default_expanded(&model.graph);
        }
        if ui.button("Expand all").on_hover_text("Open every block down to single ops").clicked() {
            rt.diagram.expanded = (0..model.graph.blocks.len()).collect();
        }
        if ui.button("Export PNG…").on_hover_text("Save the diagram as it is on screen as a PNG").clicked() {
            commands.push(Command::ExportDiagram);
        }
        ui.weak(format!("zoom {:.0}%", rt.diagram.zoom * 100.0))
            .on_hover_text("Ctrl+wheel or pinch zooms, dragging pans, F fits");
        ui.separator();
        for (label, color) in theme::legend() {
            let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
            ui.painter().rect_filled(rect, 2.0, color);
            ui.weak(label);
        }
    });
    let selected = rt.layers.selected;
    let disabled = rt.gradients.disabled.clone();
    let view = &mut rt.diagram;
    let bounds = view.layout(&model.graph, model.shapes.as_ref()).bounds;
    if view.fit_requested || !view.scene_rect.is_positive() {
        view.scene_rect = bounds;
        view.fit_requested = false;
    }
    if let Some(node) = view.follow.take()
        && let Some(layout) = &view.layout
        && let Some(&unit) = layout.unit_of.get(node)
    {
        let target = layout.rects[unit];
        if !view.scene_rect.contains_rect(target) {
            view.scene_rect = egui::Rect::from_center_size(target.center(), view.scene_rect.size());
        }
    }
    let mut toggle = None;
    let mut scene_rect = view.scene_rect;
    let Some(layout) = &view.layout else { return };
    let detail = Detail::at_zoom(view.zoom);
    let canvas = egui::Frame::canvas(ui.style()).show(ui, |ui| {
        egui::Scene::new().zoom_range(0.02..=4.0).show(ui, &mut scene_rect, |ui| {
            toggle = paint_ui(ui, model, layout, selected, &disabled, detail, commands);
        });
    });
    view.scene_rect = scene_rect;
    let shown = canvas.response.rect;
    view.zoom = (shown.width() / scene_rect.width()).min(shown.height() / scene_rect.height());
    view.canvas_rect = Some(shown.intersect(ui.clip_rect()));
    if let Some(block) = toggle
        && !view.expanded.remove(&block)
    {
        view.expanded.insert(block);
    }
}

/// How much to draw at a zoom level. Zoomed out over a whole expanded DenseNet-201, labels
/// too small to read and curves too small to see as curves cost most of a frame (tens of
/// milliseconds to lay out and tessellate), so they give way to boxes and straight strokes.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Detail {
    labels: bool,
    curves: bool,
}

impl Detail {
    /// `zoom`: screen points per diagram unit, as last drawn.
    fn at_zoom(zoom: f32) -> Self {
        // Labels are 11 units tall: under 4 points on screen nobody reads them.
        Detail { labels: zoom * 11.0 >= 4.0, curves: zoom >= 0.5 }
    }
}

/// Paints the layout; returns a block whose expansion the user toggled.
fn paint_ui(
    ui: &mut egui::Ui,
    model: &LoadedModel,
    layout: &Layout,
    selected: NodeId,
    disabled: &BTreeSet<NodeId>,
    detail: Detail,
    commands: &mut Vec<Command>,
) -> Option<BlockId> {
    let graph = &model.graph;
    let painter = ui.painter().clone();
    let text_color = ui.visuals().text_color();
    let weak = ui.visuals().weak_text_color();
    let mut toggle = None;
    // Claim the whole layout so the scene knows its extent.
    ui.allocate_rect(layout.bounds, egui::Sense::hover());

    for &(block, rect) in &layout.frames {
        if !ui.is_rect_visible(rect) {
            continue;
        }
        painter.rect_stroke(rect, 6.0, egui::Stroke::new(1.0, weak), egui::StrokeKind::Inside);
        let header = egui::Rect::from_min_size(rect.min + egui::vec2(4.0, 2.0), egui::vec2(rect.width() - 8.0, 16.0));
        let b = &graph.blocks[block];
        let response = ui.interact(header, ui.scope_id().with(("frame", block)), egui::Sense::click());
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, format!("collapse {}", b.name)));
        if detail.labels {
            painter.text(
                header.left_center(),
                egui::Align2::LEFT_CENTER,
                format!("− {} ({:?})", b.name, b.kind),
                egui::FontId::proportional(11.0),
                weak,
            );
        }
        if response.on_hover_text("Click to collapse").clicked() {
            toggle = Some(block);
        }
    }

    for &(from, to, kind, consumer) in &layout.edges {
        let (a, b) = (layout.rects[from], layout.rects[to]);
        if !ui.is_rect_visible(a.union(b)) {
            continue;
        }
        let (color, width) = match kind {
            EdgeKind::Residual if disabled.contains(&consumer) => (theme::SKIP_OFF, 2.0),
            EdgeKind::Residual => (theme::SKIP_ON, 2.0),
            EdgeKind::Dense => (theme::op_color(&Op::Concat).gamma_multiply(0.6), 1.0),
            EdgeKind::Aux => (weak.gamma_multiply(0.6), 1.0),
            EdgeKind::Sequence | EdgeKind::Branch => (weak, 1.2),
        };
        let stroke = egui::Stroke::new(width, color);
        let points = if kind == EdgeKind::Residual {
            // An arc on the right, bypassing the block, wider for longer skips.
            let bulge = 30.0 + 0.15 * (b.center().y - a.center().y).abs().min(400.0);
            let (start, end) = (a.right_center(), b.right_center());
            // The arc's outer stretch is a switch: a click turns this shortcut off or on.
            let hit = egui::Rect::from_x_y_ranges(
                start.x + 0.55 * bulge..=start.x + 0.85 * bulge,
                start.y.min(end.y) + 4.0..=start.y.max(end.y) - 4.0,
            );
            let name = &graph.nodes[consumer].name;
            let off = disabled.contains(&consumer);
            let response = ui.interact(hit, ui.scope_id().with(("skip", consumer)), egui::Sense::click());
            response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, format!("shortcut of {name}")));
            let response = response.on_hover_text(format!(
                "The shortcut into {name}: {}. Click to switch it {}.",
                if off { "off" } else { "on" },
                if off { "on" } else { "off" }
            ));
            if response.clicked() {
                let mut next = disabled.clone();
                if !next.remove(&consumer) {
                    next.insert(consumer);
                }
                commands.push(Command::SetResiduals(next));
            }
            [start, start + egui::vec2(bulge, 0.0), end + egui::vec2(bulge, 0.0), end]
        } else if kind == EdgeKind::Dense && (a.center().x - b.center().x).abs() < 1.0 {
            // Dense links fan out on the left, nested by length, so every layer of the block
            // is seen to read every earlier one.
            let bulge = 10.0 + 0.3 * (b.center().y - a.center().y).abs().min(600.0);
            let (start, end) = (a.left_center(), b.left_center());
            [start, start - egui::vec2(bulge, 0.0), end - egui::vec2(bulge, 0.0), end]
        } else {
            let (start, end) = (a.center_bottom(), b.center_top());
            let dy = (end.y - start.y).abs().max(10.0) * 0.5;
            [start, start + egui::vec2(0.0, dy), end - egui::vec2(0.0, dy), end]
        };
        if detail.curves {
            painter.add(egui::epaint::CubicBezierShape::from_points_stroke(
                points,
                false,
                egui::Color32::TRANSPARENT,
                stroke,
            ));
        } else {
            painter.add(egui::Shape::line(points.to_vec(), stroke));
        }
    }

    for (i, (&unit, &rect)) in layout.units.iter().zip(&layout.rects).enumerate() {
        if !ui.is_rect_visible(rect) {
            continue;
        }
        let (label, fill, hover) = (&layout.labels[i], layout.fills[i], &layout.hovers[i]);
        let is_selected = layout.members[i].contains(&selected);
        let response = ui.interact(rect, ui.scope_id().with(("unit", i)), egui::Sense::click());
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, label));
        painter.rect_filled(rect, 4.0, fill);
        if is_selected {
            painter.rect_stroke(rect, 4.0, egui::Stroke::new(3.0, theme::HIGHLIGHT), egui::StrokeKind::Outside);
        } else if response.hovered() {
            painter.rect_stroke(rect, 4.0, egui::Stroke::new(1.5, text_color), egui::StrokeKind::Outside);
        }
        if detail.labels {
            painter.text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                label,
                egui::FontId::proportional(11.0),
                theme::text_on(fill),
            );
        }
        if response.on_hover_text(hover.as_str()).clicked() {
            match unit {
                Unit::Node(n) => commands.push(Command::SelectNode(n)),
                Unit::Block(b) => toggle = Some(b),
            }
        }
    }
    toggle
}

/// Saves the part of a window screenshot under `rect` (in points) as a PNG; returns its size
/// in pixels.
pub fn save_region_png(
    screenshot: &egui::ColorImage,
    rect: egui::Rect,
    pixels_per_point: f32,
    path: &std::path::Path,
) -> Result<[u32; 2], String> {
    let [width, height] = screenshot.size;
    // Whole pixels inside the screenshot: a rect reaching past the window edge is cut there.
    let to_pixels = |v: f32, max: usize| ((v * pixels_per_point).round().max(0.0) as usize).min(max);
    let (x0, x1) = (to_pixels(rect.min.x, width), to_pixels(rect.max.x, width));
    let (y0, y1) = (to_pixels(rect.min.y, height), to_pixels(rect.max.y, height));
    if x1 <= x0 || y1 <= y0 {
        return Err("Could not export the diagram: it is not on screen".into());
    }
    let (w, h) = (x1 - x0, y1 - y0);
    let mut rgba = Vec::with_capacity(w * h * 4);
    for row in y0..y1 {
        let line = screenshot
            .pixels
            .get(row * width + x0..row * width + x1)
            .ok_or("Could not export the diagram: the screenshot is smaller than it says")?;
        rgba.extend(line.iter().flat_map(|c| c.to_srgba_unmultiplied()));
    }
    let size = [w as u32, h as u32];
    let image = image::RgbaImage::from_raw(size[0], size[1], rgba)
        .ok_or("Could not export the diagram: the screenshot has the wrong size")?;
    image
        .save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| format!("Could not save {}: {e}", path.display()))?;
    Ok(size)
}

/// The end of a dotted name, so it fits its box (the frame around it, or the hover, gives the
/// rest): parts are taken from the end until they say something (`transition2.norm`,
/// `layer1.0.conv1`, `block.0.0`).
fn short(name: &str) -> String {
    const MAX: usize = 22;
    let parts: Vec<&str> = name.split('.').collect();
    let mut start = parts.len().saturating_sub(1);
    let vague = |start: usize| {
        let leading = parts.get(start).copied().unwrap_or("");
        parts[start..].join(".").len() < 6 || leading.chars().all(|c| c.is_ascii_digit())
    };
    while start > 0 && vague(start) {
        start -= 1;
    }
    let tail = parts[start..].join(".");
    let count = tail.chars().count();
    if count <= MAX { tail } else { format!("…{}", tail.chars().skip(count - MAX + 1).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// The layout of an architecture with some blocks opened, and a unit's x by node name.
    fn laid_out(arch: &str, open: &[&str]) -> (Arc<Graph>, Layout) {
        let graph = crate::zoo::find(arch).expect("a known architecture").graph();
        let mut expanded = default_expanded(&graph);
        for name in open {
            let block = graph.blocks.iter().position(|b| b.name == *name).expect("a block of that name");
            expanded.insert(block);
        }
        let layout = compute_layout(&graph, None, &expanded);
        (graph, layout)
    }

    fn x_of(graph: &Graph, layout: &Layout, node: &str) -> f32 {
        let id = graph.nodes.iter().position(|n| n.name == node).expect("a node of that name");
        layout.rects[layout.unit_of[id]].center().x
    }

    #[test]
    fn inception_branches_keep_their_columns_and_merge_in_the_middle() {
        let (graph, layout) = laid_out("inception_v3", &["Mixed_5b", "AuxLogits"]);
        let x = |node: &str| x_of(&graph, &layout, node);
        let branches = [
            ["Mixed_5b.branch5x5_1.conv", "Mixed_5b.branch5x5_1.relu", "Mixed_5b.branch5x5_2.relu"],
            ["Mixed_5b.branch3x3dbl_1.conv", "Mixed_5b.branch3x3dbl_2.conv", "Mixed_5b.branch3x3dbl_3.relu"],
            ["Mixed_5b.pool", "Mixed_5b.branch_pool.conv", "Mixed_5b.branch_pool.relu"],
        ];
        let mut columns = vec![x("Mixed_5b.branch1x1.conv")];
        for branch in branches {
            assert!(branch.iter().all(|n| x(n) == x(branch[0])), "{branch:?} stays in one column");
            columns.push(x(branch[0]));
        }
        assert!(columns.windows(2).all(|w| w[1] - w[0] >= BOX_SIZE.x), "four columns side by side: {columns:?}");
        // The fork and the concatenation sit on the trunk, between the branches.
        let trunk = x("maxpool2");
        assert!((x("Mixed_5b.concat") - trunk).abs() < 1e-3);
        assert!((columns.iter().sum::<f32>() / 4.0 - trunk).abs() < 1e-3, "branches centred under the fork");
        assert!((x("Mixed_5c.concat") - trunk).abs() < 1e-3, "the trunk goes on straight");
        assert!(x("AuxLogits.pool") > x("Mixed_7a.concat"), "the auxiliary classifier leans aside");
        assert_eq!(x("AuxLogits.fc"), x("AuxLogits.pool"), "and runs straight");
        assert!((x("fc") - trunk).abs() < 1e-3, "and the trunk stays straight past it");
    }

    #[test]
    fn a_projection_shortcut_does_not_push_the_trunk_aside() {
        let (graph, layout) = laid_out("resnet50", &["layer1.0", "layer2.0"]);
        let x = |node: &str| x_of(&graph, &layout, node);
        let trunk = x("maxpool");
        assert!(x("layer1.0.conv1") < x("layer1.0.downsample.0"), "the projection runs beside the body");
        assert!((x("layer1.0.add") - trunk).abs() < 1e-3);
        assert!((x("layer2.0.add") - trunk).abs() < 1e-3);
        assert!((x("fc") - trunk).abs() < 1e-3);
    }

    #[test]
    fn spread_keeps_wanted_places_and_pushes_overlaps_apart() {
        assert_eq!(spread(&[0.0, 100.0], 10.0), [0.0, 100.0]);
        assert_eq!(spread(&[5.0, 5.0, 5.0], 10.0), [-5.0, 5.0, 15.0]);
        assert_eq!(spread(&[0.0, 0.0, 30.0, 31.0], 10.0), [-5.0, 5.0, 25.5, 35.5]);
    }

    #[test]
    fn zoomed_out_drops_unreadable_labels_and_curves_first() {
        assert_eq!(Detail::at_zoom(1.0), Detail { labels: true, curves: true });
        assert_eq!(Detail::at_zoom(0.4), Detail { labels: true, curves: false });
        assert_eq!(Detail::at_zoom(0.1), Detail { labels: false, curves: false });
    }

    #[test]
    fn short_names_keep_the_telling_end() {
        assert_eq!(short("conv1"), "conv1");
        assert_eq!(short("layer1.0"), "layer1.0");
        assert_eq!(short("layer1.0.conv1"), "layer1.0.conv1");
        assert_eq!(short("features.transition2.norm"), "transition2.norm");
        assert_eq!(short("features.denseblock1"), "denseblock1");
        assert_eq!(short("features.1.0.block.0.0"), "block.0.0");
        assert_eq!(short("Mixed_5b.branch3x3dbl_3.conv"), "branch3x3dbl_3.conv");
    }
}
