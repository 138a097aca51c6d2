//! Where everything goes: units (a node, or a collapsed block) in rows by depth, columns
//! that keep branches apart, frames around expanded blocks, the curves of the edges, and what
//! a point hits. Pure: no painting, no egui context, so it is tested on its own.

use std::collections::{BTreeSet, HashMap};

use convscope_core::format::human_count;
use convscope_core::graph::{BlockId, BlockKind, EdgeKind, Graph, NodeId, Op, shape_label};
use convscope_core::shapes::ShapeReport;

use crate::theme;

const BOX_SIZE: egui::Vec2 = egui::vec2(170.0, 26.0);
const ROW_GAP: f32 = 18.0;
const COLUMN_GAP: f32 = 24.0;
/// Height of an expanded block's title, above its first row.
const FRAME_HEADER: f32 = 20.0;
const FRAME_PAD: f32 = 6.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Unit {
    Node(NodeId),
    Block(BlockId),
}

pub(super) struct Layout {
    pub(super) units: Vec<Unit>,
    pub(super) rects: Vec<egui::Rect>,
    /// Per unit: its text, fill and hover, made once rather than every frame.
    pub(super) labels: Vec<String>,
    pub(super) fills: Vec<egui::Color32>,
    pub(super) hovers: Vec<String>,
    /// `(from unit, to unit, kind, consumer node)`.
    pub(super) edges: Vec<(usize, usize, EdgeKind, NodeId)>,
    /// Per edge: its curve.
    pub(super) wires: Vec<Wire>,
    /// Each node's unit.
    pub(super) unit_of: Vec<usize>,
    /// Frames of expanded blocks with something inside to frame, and their titles.
    pub(super) frames: Vec<(BlockId, egui::Rect)>,
    pub(super) frame_titles: Vec<String>,
    pub(super) bounds: egui::Rect,
}

/// An edge's curve, made once with the layout.
pub(super) struct Wire {
    pub(super) points: [egui::Pos2; 4],
    /// What the curve may cover, for culling.
    pub(super) bounds: egui::Rect,
    /// A residual shortcut's switch: the stretch of its arc a click turns off or on.
    pub(super) switch: Option<egui::Rect>,
}

/// What a click on the diagram reaches; indices into the layout's frames, edges and units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Target {
    Frame(usize),
    Shortcut(usize),
    Unit(usize),
}

impl Layout {
    /// Everything clickable, in the order it is drawn: a later one lies on top.
    pub(super) fn targets(&self) -> impl Iterator<Item = (Target, egui::Rect)> + '_ {
        let frames = self.frames.iter().enumerate().map(|(i, &(_, rect))| (Target::Frame(i), frame_header(rect)));
        let shortcuts =
            self.wires.iter().enumerate().filter_map(|(i, wire)| wire.switch.map(|rect| (Target::Shortcut(i), rect)));
        let units = self.rects.iter().enumerate().map(|(i, &rect)| (Target::Unit(i), rect));
        frames.chain(shortcuts).chain(units)
    }

    /// The target at `pos`: the topmost under it, else the nearest within `slack`, as egui
    /// picks among widgets.
    pub(super) fn hit(&self, pos: egui::Pos2, slack: f32) -> Option<Target> {
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
pub(super) fn frame_header(frame: egui::Rect) -> egui::Rect {
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

/// Containers are open from the start; the blocks that carry a family's idea are closed.
pub(super) fn default_expanded(graph: &Graph) -> BTreeSet<BlockId> {
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

pub(super) fn compute_layout(graph: &Graph, shapes: Option<&ShapeReport>, expanded: &BTreeSet<BlockId>) -> Layout {
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
