//! Drawing the layout and answering clicks on it: boxes, frames, wires and labels, fewer of
//! them as the view zooms out, and one hit test standing in for hundreds of widgets when the
//! boxes are too small to read.

use std::collections::BTreeSet;
use std::sync::Arc;

use convscope_core::graph::{BlockId, EdgeKind, Graph, NodeId, Op};

use super::layout::{Layout, Target, Unit, frame_header};
use crate::{Command, theme};

/// The frames, edges and boxes tessellated once, for one zoom level and pixel phase. Zoomed out
/// over a whole expanded DenseNet-201 they are thousands of shapes, which took more time to
/// tessellate every frame than the rest of the window.
pub(super) struct Baked {
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

/// How much to draw at a zoom level. Zoomed out over a whole expanded DenseNet-201, labels
/// too small to read and curves too small to see as curves cost most of a frame (tens of
/// milliseconds to lay out and tessellate), so they give way to boxes and straight strokes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Detail {
    labels: bool,
    curves: bool,
}

impl Detail {
    /// `zoom`: screen points per diagram unit, as last drawn.
    pub(super) fn at_zoom(zoom: f32) -> Self {
        // Labels are 11 units tall: under 4 points on screen nobody reads them.
        Detail { labels: zoom * 11.0 >= 4.0, curves: zoom >= 0.5 }
    }
}

/// What the diagram shows this frame.
pub(super) struct Shown<'a> {
    pub(super) graph: &'a Graph,
    pub(super) layout: &'a Layout,
    pub(super) selected: NodeId,
    pub(super) disabled: &'a BTreeSet<NodeId>,
    pub(super) detail: Detail,
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
pub(super) fn paint_ui(
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::super::layout::compute_layout;
    use super::*;

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

    /// What the diagram hands back frame after frame, and where its scene puts it.
    struct Probe {
        scene_rect: egui::Rect,
        baked: Option<Baked>,
        commands: Vec<Command>,
        toggled: Vec<BlockId>,
        to_screen: egui::emath::TSTransform,
    }

    /// `draw` inside a scene fitted to an 800×600 window, as `DiagramView::ui` shows the diagram.
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
}
