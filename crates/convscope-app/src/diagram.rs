//! The architecture drawn with the painter inside an `egui::Scene` (pan, zoom, fit).
//!
//! A block of a family's signature kind (a bottleneck, an Inception module, a dense layer, a
//! fire module, an MBConv…) starts collapsed to one box and expands in place with a click.
//! Boxes sit in rows by their depth from the input, so parallel branches land side by side;
//! residual shortcuts bypass their block as arcs on the right, red when switched off.
//! The layout is computed once per architecture and expansion state. Zoomed out, the frames,
//! edges and boxes are tessellated once per zoom level, and past reading the boxes answer
//! through one widget over the canvas.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::app::Runtime;
use crate::{Command, theme};
use convscope_core::format::human_count;
use convscope_core::graph::{BlockId, BlockKind, EdgeKind, Graph, NodeId, Op, shape_label};
use convscope_core::shapes::ShapeReport;

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
    /// `(from unit, to unit, kind, consumer node)`.
    edges: Vec<(usize, usize, EdgeKind, NodeId)>,
    /// Per edge: its curve.
    wires: Vec<Wire>,
    /// Each node's unit.
    unit_of: Vec<usize>,
    /// Frames of expanded blocks with something inside to frame, and their titles.
    frames: Vec<(BlockId, egui::Rect)>,
    frame_titles: Vec<String>,
    bounds: egui::Rect,
}

/// An edge's curve, made once with the layout.
struct Wire {
    points: [egui::Pos2; 4],
    /// What the curve may cover, for culling.
    bounds: egui::Rect,
    /// A residual shortcut's switch: the stretch of its arc a click turns off or on.
    switch: Option<egui::Rect>,
}

/// What a click on the diagram reaches; indices into the layout's frames, edges and units.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Target {
    Frame(usize),
    Shortcut(usize),
    Unit(usize),
}

impl Layout {
    /// Everything clickable, in the order it is drawn: a later one lies on top.
    fn targets(&self) -> impl Iterator<Item = (Target, egui::Rect)> + '_ {
        let frames = self.frames.iter().enumerate().map(|(i, &(_, rect))| (Target::Frame(i), frame_header(rect)));
        let shortcuts =
            self.wires.iter().enumerate().filter_map(|(i, wire)| wire.switch.map(|rect| (Target::Shortcut(i), rect)));
        let units = self.rects.iter().enumerate().map(|(i, &rect)| (Target::Unit(i), rect));
        frames.chain(shortcuts).chain(units)
    }

    /// The target at `pos`: the topmost under it, else the nearest within `slack`, as egui
    /// picks among widgets.
    fn hit(&self, pos: egui::Pos2, slack: f32) -> Option<Target> {
        let mut best = None;
        let mut best_distance = slack;
        for (target, rect) in self.targets() {
            let distance = rect.distance_to_pos(pos);
            if distance < best_distance || distance == 0.0 {
                best = Some(target);
                best_distance = distance;
            }
        }
        best
    }
}

/// The clickable title strip of an expanded block's frame.
fn frame_header(frame: egui::Rect) -> egui::Rect {
    egui::Rect::from_min_size(frame.min + egui::vec2(4.0, 2.0), egui::vec2(frame.width() - 8.0, 16.0))
}

/// The curve from box `a` to box `b`.
fn wire(a: egui::Rect, b: egui::Rect, kind: EdgeKind) -> Wire {
    let mut switch = None;
    let points = if kind == EdgeKind::Residual {
        // An arc on the right, bypassing the block, wider for longer skips.
        let bulge = 30.0 + 0.15 * (b.center().y - a.center().y).abs().min(400.0);
        let (start, end) = (a.right_center(), b.right_center());
        // The arc's outer stretch is a switch: a click turns this shortcut off or on.
        switch = Some(egui::Rect::from_x_y_ranges(
            start.x + 0.55 * bulge..=start.x + 0.85 * bulge,
            start.y.min(end.y) + 4.0..=start.y.max(end.y) - 4.0,
        ));
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
    // A Bézier curve stays inside its control points; the stroke reaches a little past them.
    Wire { points, bounds: egui::Rect::from_points(&points).expand(2.0), switch }
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
    baked: Option<Baked>,
}

/// The frames, edges and boxes tessellated once, for one zoom level and pixel phase. Zoomed out
/// over a whole expanded DenseNet-201 they are thousands of shapes, which took more time to
/// tessellate every frame than the rest of the window.
struct Baked {
    /// Pixels per point; layout to screen less whole pixels of panning, since the meshes are
    /// rounded to the pixel grid as egui would round the shapes; the edges' weak colour.
    key: (f32, egui::emath::TSTransform, egui::Color32),
    /// The shortcuts drawn switched off.
    disabled: BTreeSet<NodeId>,
    /// The part of the layout the meshes cover.
    region: egui::Rect,
    frames: Arc<egui::Mesh>,
    body: Arc<egui::Mesh>,
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
            baked: None,
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
        let current =
            self.layout_key.as_ref().is_some_and(|(arch, open)| *arch == graph.arch && *open == self.expanded);
        if !current || self.layout.is_none() {
            self.layout = Some(compute_layout(graph, shapes, &self.expanded));
            self.layout_key = Some((graph.arch.clone(), self.expanded.clone()));
            self.baked = None;
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
    let wires = edges.iter().map(|&(from, to, kind, _)| wire(rects[from], rects[to], kind)).collect();
    let frame_titles =
        frames.iter().map(|&(b, _)| format!("− {} ({})", graph.blocks[b].name, graph.blocks[b].kind.label())).collect();
    Layout { units, rects, labels, fills, hovers, edges, wires, unit_of, frames, frame_titles, bounds }
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
    let count = |f: fn(&convscope_core::shapes::NodeInfo) -> i64| {
        human_count(members.iter().filter_map(|&n| shapes.and_then(|s| s.nodes.get(n))).map(f).sum())
    };
    match unit {
        Unit::Node(n) => {
            let node = &graph.nodes[n];
            let shape = shapes
                .and_then(|s| s.nodes.get(n))
                .map_or_else(String::new, |i| format!("\noutput {}", shape_label(&i.shape)));
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
                "{} ({})\n{} nodes · {} params · {} MACs\nclick to expand",
                block.name,
                block.kind.label(),
                members.len(),
                count(|i| i.params),
                count(|i| i.macs)
            );
            (format!("+ {} · {}", short(&block.name), block.kind.label()), fill, hover)
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
    let disabled = &rt.gradients.disabled;
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
    let shown = Shown { graph: &model.graph, layout, selected, disabled, detail: Detail::at_zoom(view.zoom) };
    let baked = &mut view.baked;
    let canvas = egui::Frame::canvas(ui.style()).show(ui, |ui| {
        egui::Scene::new().zoom_range(0.02..=4.0).show(ui, &mut scene_rect, |ui| {
            toggle = paint_ui(ui, &shown, baked, commands);
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

/// What the diagram shows this frame.
struct Shown<'a> {
    graph: &'a Graph,
    layout: &'a Layout,
    selected: NodeId,
    disabled: &'a BTreeSet<NodeId>,
    detail: Detail,
}

impl Shown<'_> {
    fn target_id(&self, ui: &egui::Ui, target: Target) -> egui::Id {
        match target {
            Target::Frame(i) => ui.scope_id().with(("frame", self.layout.frames[i].0)),
            Target::Shortcut(i) => ui.scope_id().with(("skip", self.layout.edges[i].3)),
            Target::Unit(i) => ui.scope_id().with(("unit", i)),
        }
    }

    /// A target's name for accessibility.
    fn label(&self, target: Target) -> String {
        match target {
            Target::Frame(i) => format!("collapse {}", self.graph.blocks[self.layout.frames[i].0].name),
            Target::Shortcut(i) => format!("shortcut of {}", self.graph.nodes[self.layout.edges[i].3].name),
            Target::Unit(i) => self.layout.labels[i].clone(),
        }
    }

    fn hover(&self, target: Target) -> String {
        match target {
            Target::Frame(_) => "Click to collapse".to_owned(),
            Target::Shortcut(i) => {
                let consumer = self.layout.edges[i].3;
                let off = self.disabled.contains(&consumer);
                format!(
                    "The shortcut into {}: {}. Click to switch it {}.",
                    self.graph.nodes[consumer].name,
                    if off { "off" } else { "on" },
                    if off { "on" } else { "off" }
                )
            }
            Target::Unit(i) => self.layout.hovers[i].clone(),
        }
    }

    /// Answers a click on a target; returns a block whose expansion it toggles.
    fn click(&self, target: Target, commands: &mut Vec<Command>) -> Option<BlockId> {
        match target {
            Target::Frame(i) => return Some(self.layout.frames[i].0),
            Target::Shortcut(i) => {
                let consumer = self.layout.edges[i].3;
                let mut next = self.disabled.clone();
                if !next.remove(&consumer) {
                    next.insert(consumer);
                }
                commands.push(Command::SetResiduals(next));
            }
            Target::Unit(i) => match self.layout.units[i] {
                Unit::Node(n) => commands.push(Command::SelectNode(n)),
                Unit::Block(b) => return Some(b),
            },
        }
        None
    }

    /// The frames' outlines inside `region`.
    fn frame_shapes(&self, region: egui::Rect, weak: egui::Color32) -> Vec<egui::Shape> {
        let stroke = egui::Stroke::new(1.0, weak);
        let frames = self.layout.frames.iter().filter(|(_, rect)| region.intersects(*rect));
        frames.map(|&(_, rect)| egui::Shape::rect_stroke(rect, 6.0, stroke, egui::StrokeKind::Inside)).collect()
    }

    /// The edges and boxes inside `region`, boxes over the ends of their edges.
    fn body_shapes(&self, region: egui::Rect, weak: egui::Color32, curves: bool) -> Vec<egui::Shape> {
        let layout = self.layout;
        let mut shapes = Vec::new();
        for (wire, &(_, _, kind, consumer)) in layout.wires.iter().zip(&layout.edges) {
            if !region.intersects(wire.bounds) {
                continue;
            }
            let (color, width) = match kind {
                EdgeKind::Residual if self.disabled.contains(&consumer) => (theme::SKIP_OFF, 2.0),
                EdgeKind::Residual => (theme::SKIP_ON, 2.0),
                EdgeKind::Dense => (theme::op_color(&Op::Concat).gamma_multiply(0.6), 1.0),
                EdgeKind::Aux => (weak.gamma_multiply(0.6), 1.0),
                EdgeKind::Sequence | EdgeKind::Branch => (weak, 1.2),
            };
            let stroke = egui::Stroke::new(width, color);
            shapes.push(if curves {
                egui::epaint::CubicBezierShape::from_points_stroke(
                    wire.points,
                    false,
                    egui::Color32::TRANSPARENT,
                    stroke,
                )
                .into()
            } else {
                egui::Shape::line(wire.points.to_vec(), stroke)
            });
        }
        for (&rect, &fill) in layout.rects.iter().zip(&layout.fills) {
            if region.intersects(rect) {
                shapes.push(egui::Shape::rect_filled(rect, 4.0, fill));
            }
        }
        shapes
    }

    /// The frames, edges and boxes as meshes, from `baked` while it still fits the view.
    fn baked(&self, ui: &egui::Ui, baked: &mut Option<Baked>, weak: egui::Color32) -> (egui::Shape, egui::Shape) {
        let ctx = ui.ctx();
        let to_screen = ctx.layer_transform_to_global(ui.layer_id()).unwrap_or_default();
        let pixels_per_point = ctx.pixels_per_point();
        // Whole pixels of panning move the meshes as they are; only the fraction changes them.
        let pixels = to_screen.translation * pixels_per_point;
        let fraction = (pixels - pixels.floor()) / pixels_per_point;
        let phase = egui::emath::TSTransform::new(fraction, to_screen.scaling);
        let key = (pixels_per_point, phase, weak);
        let visible = ui.clip_rect();
        if let Some(b) = baked.as_ref()
            && b.key == key
            && b.disabled == *self.disabled
            && b.region.contains_rect(visible)
        {
            return (egui::Shape::mesh(Arc::clone(&b.frames)), egui::Shape::mesh(Arc::clone(&b.body)));
        }
        // Some room around the view, so panning a little keeps the meshes.
        let region = visible.expand2(visible.size());
        let options = ctx.tessellation_options(|o| *o);
        let font_image = ctx.fonts(|f| f.font_image_size());
        let mesh = |shapes: Vec<egui::Shape>| {
            // Tessellated where they are drawn, then brought back to layout units for the scene
            // to place, so feathering and pixel rounding come out as egui's own.
            let mut tessellator = egui::epaint::Tessellator::new(pixels_per_point, options, font_image, Vec::new());
            let mut mesh = egui::Mesh::default();
            for mut shape in shapes {
                shape.transform(phase);
                tessellator.tessellate_shape(shape, &mut mesh);
            }
            mesh.transform(phase.inverse());
            Arc::new(mesh)
        };
        let b = baked.insert(Baked {
            key,
            disabled: self.disabled.clone(),
            region,
            frames: mesh(self.frame_shapes(region, weak)),
            body: mesh(self.body_shapes(region, weak, false)),
        });
        (egui::Shape::mesh(Arc::clone(&b.frames)), egui::Shape::mesh(Arc::clone(&b.body)))
    }
}

/// Paints the layout; returns a block whose expansion the user toggled.
///
/// Boxes big enough to read are widgets of their own, as any button; zoomed out past that, one
/// widget over the canvas and a hit test stand in for hundreds, whose interactions and
/// accessibility nodes cost most of a frame. Without curves, the static shapes come from meshes
/// baked once per zoom level.
fn paint_ui(
    ui: &mut egui::Ui,
    shown: &Shown<'_>,
    baked: &mut Option<Baked>,
    commands: &mut Vec<Command>,
) -> Option<BlockId> {
    let Shown { layout, selected, detail, .. } = *shown;
    let painter = ui.painter().clone();
    let text_color = ui.visuals().text_color();
    let weak = ui.visuals().weak_text_color();
    let visible = ui.clip_rect();
    let mut toggle = None;
    // Claim the whole layout so the scene knows its extent.
    let sense = if detail.labels { egui::Sense::hover() } else { egui::Sense::click() };
    let canvas = ui.allocate_rect(layout.bounds, sense);

    let (frames, body) = if detail.curves {
        (egui::Shape::Vec(shown.frame_shapes(visible, weak)), egui::Shape::Vec(shown.body_shapes(visible, weak, true)))
    } else {
        shown.baked(ui, baked, weak)
    };
    painter.add(frames);
    if detail.labels {
        let font = egui::FontId::proportional(11.0);
        let titles = layout.frames.iter().zip(&layout.frame_titles).filter(|((_, rect), _)| visible.intersects(*rect));
        let titles: Vec<egui::Shape> = titles
            .map(|(&(_, rect), title)| {
                let anchor = frame_header(rect).left_center();
                let galley = painter.layout_no_wrap(title.clone(), font.clone(), weak);
                let at = egui::Align2::LEFT_CENTER.anchor_size(anchor, galley.size());
                egui::Shape::galley(at.min, galley, weak)
            })
            .collect();
        painter.extend(titles);
    }
    painter.add(body);

    let mut hovered = None;
    if detail.labels {
        for (target, rect) in layout.targets() {
            // A frame or shortcut in view stays reachable when its own strip is not.
            let seen = match target {
                Target::Frame(i) => layout.frames[i].1,
                Target::Shortcut(i) => layout.wires[i].bounds,
                Target::Unit(_) => rect,
            };
            if !ui.is_rect_visible(seen) {
                continue;
            }
            let response = ui.interact(rect, shown.target_id(ui, target), egui::Sense::click());
            response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, shown.label(target)));
            if response.hovered() {
                hovered = Some(target);
            }
            if response.on_hover_text(shown.hover(target)).clicked() {
                toggle = shown.click(target, commands).or(toggle);
            }
        }
    } else {
        let slack = ui.style().interaction.interact_radius
            / ui.ctx().layer_transform_to_global(ui.layer_id()).unwrap_or_default().scaling;
        hovered = canvas.hover_pos().and_then(|pos| layout.hit(pos, slack));
        canvas.widget_info(|| {
            let boxes = format!("{} boxes, too small to read: zoom in to reach them", layout.units.len());
            egui::WidgetInfo::labeled(egui::Role::Canvas, true, boxes)
        });
        if let Some(target) = hovered {
            let canvas = canvas.on_hover_ui_at_pointer(|ui| {
                ui.set_max_width(ui.spacing().tooltip_width);
                ui.label(shown.hover(target));
            });
            if canvas.clicked() {
                toggle = shown.click(target, commands);
            }
        }
    }

    let selected = layout.unit_of.get(selected).copied();
    let hovered = match hovered {
        Some(Target::Unit(u)) if Some(u) != selected => Some(u),
        _ => None,
    };
    let mut overlay = Vec::new();
    for (unit, stroke) in
        [(selected, egui::Stroke::new(3.0, theme::HIGHLIGHT)), (hovered, egui::Stroke::new(1.5, text_color))]
    {
        if let Some(u) = unit
            && visible.intersects(layout.rects[u])
        {
            overlay.push(egui::Shape::rect_stroke(layout.rects[u], 4.0, stroke, egui::StrokeKind::Outside));
        }
    }
    if detail.labels {
        let font = egui::FontId::proportional(11.0);
        for (i, &rect) in layout.rects.iter().enumerate() {
            if !visible.intersects(rect) {
                continue;
            }
            let color = theme::text_on(layout.fills[i]);
            let galley = painter.layout_no_wrap(layout.labels[i].clone(), font.clone(), color);
            let at = egui::Align2::CENTER_CENTER.anchor_size(rect.center(), galley.size());
            overlay.push(egui::Shape::galley(at.min, galley, color));
        }
    }
    painter.extend(overlay);
    toggle
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
        let graph = convscope_core::zoo::find(arch).expect("a known architecture").graph();
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

    fn all_open(arch: &str) -> (Arc<Graph>, Layout) {
        let graph = convscope_core::zoo::find(arch).expect("a known architecture").graph();
        let layout = compute_layout(&graph, None, &(0..graph.blocks.len()).collect());
        (graph, layout)
    }

    #[test]
    fn a_hit_is_the_topmost_target_under_the_pointer_else_the_nearest_within_reach() {
        let (graph, layout) = laid_out("resnet50", &["layer1.0"]);
        let conv = graph.nodes.iter().position(|n| n.name == "layer1.0.conv1").expect("layer1.0.conv1");
        let unit = layout.unit_of[conv];
        let rect = layout.rects[unit];
        assert_eq!(layout.hit(rect.center(), 0.0), Some(Target::Unit(unit)));
        let below = rect.center_bottom() + egui::vec2(0.0, 5.0);
        assert_eq!(layout.hit(below, 6.0), Some(Target::Unit(unit)), "a near miss reaches the box");
        assert_eq!(layout.hit(below, 4.0), None, "a far one does not");
        let frame = layout.frames.iter().position(|&(b, _)| graph.blocks[b].name == "layer1.0").expect("its frame");
        assert_eq!(layout.hit(frame_header(layout.frames[frame].1).center(), 0.0), Some(Target::Frame(frame)));
        let shortcut = layout
            .edges
            .iter()
            .position(|e| e.2 == EdgeKind::Residual && graph.nodes[e.3].name == "layer1.1.add")
            .expect("layer1.1's shortcut");
        let switch = layout.wires[shortcut].switch.expect("a shortcut has a switch");
        assert_eq!(layout.hit(switch.center(), 0.0), Some(Target::Shortcut(shortcut)));
        assert_eq!(layout.hit(layout.bounds.max + egui::vec2(500.0, 500.0), 50.0), None);
    }

    /// What the diagram hands back frame after frame, and where its scene puts it.
    struct Probe {
        scene_rect: egui::Rect,
        baked: Option<Baked>,
        commands: Vec<Command>,
        toggled: Vec<BlockId>,
        to_screen: egui::emath::TSTransform,
    }

    /// `draw` inside a scene fitted to an 800×600 window, as `diagram_ui` shows the diagram.
    fn scene_harness<'a>(
        graph: &'a Graph,
        layout: &'a Layout,
        disabled: &'a BTreeSet<NodeId>,
        pixels_per_point: f32,
        draw: impl Fn(&mut egui::Ui, &Shown<'_>, &mut Probe) + 'a,
    ) -> egui_kittest::Harness<'a, Probe> {
        let probe = Probe {
            scene_rect: layout.bounds,
            baked: None,
            commands: Vec::new(),
            toggled: Vec::new(),
            to_screen: egui::emath::TSTransform::IDENTITY,
        };
        egui_kittest::Harness::builder()
            .with_size(egui::vec2(800.0, 600.0))
            .with_pixels_per_point(pixels_per_point)
            .build_ui_state(
                move |ui, probe: &mut Probe| {
                    let mut scene_rect = probe.scene_rect;
                    egui::Scene::new().zoom_range(0.02..=4.0).show(ui, &mut scene_rect, |ui| {
                        probe.to_screen = ui.ctx().layer_transform_to_global(ui.layer_id()).unwrap_or_default();
                        let detail = Detail::at_zoom(probe.to_screen.scaling);
                        draw(ui, &Shown { graph, layout, selected: 0, disabled, detail }, probe);
                    });
                    probe.scene_rect = scene_rect;
                },
                probe,
            )
    }

    #[test]
    fn baked_meshes_draw_what_their_shapes_draw() {
        let (graph, layout) = all_open("densenet201");
        let disabled = BTreeSet::new();
        // A fractional scale, so the meshes' pixel rounding is put to the test.
        let render = |bake: bool| {
            let mut harness = scene_harness(&graph, &layout, &disabled, 1.5, move |ui, shown, probe| {
                let (visible, weak) = (ui.clip_rect(), ui.visuals().weak_text_color());
                let (frames, body) = if bake {
                    shown.baked(ui, &mut probe.baked, weak)
                } else {
                    let frames = shown.frame_shapes(visible, weak);
                    (egui::Shape::Vec(frames), egui::Shape::Vec(shown.body_shapes(visible, weak, false)))
                };
                ui.painter().add(frames);
                ui.painter().add(body);
            });
            harness.run_steps(2);
            assert_eq!(harness.state().baked.is_some(), bake);
            harness.render().expect("the diagram renders")
        };
        let (baked, drawn) = (render(true), render(false));
        // The most common colour is the canvas behind the diagram.
        let mut colours: HashMap<[u8; 4], usize> = HashMap::new();
        for pixel in drawn.pixels() {
            *colours.entry(pixel.0).or_default() += 1;
        }
        let background = colours.into_iter().max_by_key(|&(_, n)| n).map(|(colour, _)| colour);
        let painted = drawn.pixels().filter(|p| Some(p.0) != background).count();
        let differ = |a: &image::Rgba<u8>, b: &image::Rgba<u8>| a.0.iter().zip(b.0).any(|(x, y)| x.abs_diff(y) > 2);
        let different = baked.pixels().zip(drawn.pixels()).filter(|(a, b)| differ(a, b)).count();
        assert!(painted > 20_000, "the diagram is drawn: {painted} pixels");
        // Float rounding moves a few anti-aliased edges by a shade; a misplaced or misrounded
        // mesh changes thousands of pixels.
        assert!(different * 100 <= painted, "{different} of {painted} pixels differ");
    }

    #[test]
    fn zoomed_out_one_widget_answers_for_every_box_frame_and_shortcut() {
        use egui_kittest::kittest::Queryable as _;
        let (graph, layout) = all_open("resnet50");
        let disabled = BTreeSet::new();
        let mut harness = scene_harness(&graph, &layout, &disabled, 1.0, |ui, shown, probe| {
            probe.toggled.extend(paint_ui(ui, shown, &mut probe.baked, &mut probe.commands));
        });
        harness.run_steps(2);
        let zoom = harness.state().to_screen.scaling;
        assert!(!Detail::at_zoom(zoom).labels, "zoomed out past reading: {zoom}");
        assert!(harness.query_by_label("layer2.1.conv2 · Conv2d").is_none(), "boxes that small are no widgets");
        assert!(harness.query_by_label_contains("too small to read").is_some(), "the canvas says what it holds");
        let click = |harness: &mut egui_kittest::Harness<'_, Probe>, at: egui::Pos2| {
            let pos = harness.state().to_screen * at;
            harness.hover_at(pos);
            harness.step();
            for pressed in [true, false] {
                let button = egui::PointerButton::Primary;
                harness.event(egui::Event::PointerButton { pos, button, pressed, modifiers: egui::Modifiers::NONE });
                harness.step();
            }
        };

        let conv = graph.nodes.iter().position(|n| n.name == "layer2.1.conv2").expect("layer2.1.conv2");
        click(&mut harness, layout.rects[layout.unit_of[conv]].center());
        assert!(matches!(harness.state().commands[..], [Command::SelectNode(n)] if n == conv), "the box is selected");

        let frame = layout.frames.iter().position(|&(b, _)| graph.blocks[b].name == "layer2.1").expect("its frame");
        click(&mut harness, frame_header(layout.frames[frame].1).center());
        assert_eq!(harness.state().toggled, [layout.frames[frame].0], "the frame's title collapses it");

        let add = graph.nodes.iter().position(|n| n.name == "layer2.1.add").expect("layer2.1.add");
        let shortcut =
            layout.edges.iter().position(|e| e.2 == EdgeKind::Residual && e.3 == add).expect("layer2.1's shortcut");
        click(&mut harness, layout.wires[shortcut].switch.expect("a switch").center());
        let off = BTreeSet::from([add]);
        assert!(
            matches!(&harness.state().commands[..], [_, Command::SetResiduals(set)] if *set == off),
            "the arc switches the shortcut off"
        );
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
