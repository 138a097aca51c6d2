//! The architecture drawn with the painter inside an `egui::Scene` (pan, zoom, fit).
//!
//! A block of a family's signature kind (a bottleneck, an Inception module, a dense layer, a
//! fire module, an MBConv…) starts collapsed to one box and expands in place with a click.
//! Boxes sit in rows by their depth from the input, so parallel branches land side by side;
//! residual shortcuts bypass their block as arcs on the right, red when switched off.
//! The layout is computed once per architecture and expansion state. Zoomed out, the frames,
//! edges and boxes are tessellated once per zoom level, and past reading the boxes answer
//! through one widget over the canvas.

mod layout;
mod paint;

use std::collections::BTreeSet;

use convscope_core::graph::{BlockId, Graph, NodeId};
use convscope_core::shapes::ShapeReport;

use crate::{Command, LoadedModel, theme};
use layout::{Layout, compute_layout, default_expanded};
use paint::{Baked, Detail, Shown, paint_ui};

pub struct DiagramView {
    expanded: BTreeSet<BlockId>,
    layout: Option<Layout>,
    layout_key: Option<(String, BTreeSet<BlockId>)>,
    scene_rect: egui::Rect,
    fit_requested: bool,
    follow: Option<NodeId>,
    /// A node to zoom in on the next time the diagram is drawn.
    focus: Option<NodeId>,
    /// Where the canvas was drawn this frame, in points; `None` when the diagram is hidden.
    canvas_rect: Option<egui::Rect>,
    /// Screen points per layout point, as last drawn.
    zoom: f32,
    baked: Option<Baked>,
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
            focus: None,
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

    /// Opens the blocks holding `node` and zooms in on it the next time the diagram is drawn.
    pub fn reveal(&mut self, graph: &Graph, node: NodeId) {
        if self.layout_key.as_ref().is_none_or(|(arch, _)| *arch != graph.arch) {
            self.expanded = default_expanded(graph);
        }
        let mut block = graph.nodes.get(node).and_then(|n| n.block);
        while let Some(b) = block {
            self.expanded.insert(b);
            block = graph.blocks[b].parent;
        }
        // The expansion stands; the layout follows it when next drawn.
        self.layout_key = Some((graph.arch.clone(), self.expanded.clone()));
        self.layout = None;
        self.focus = Some(node);
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

    /// The loaded model's graph, its `selected` node outlined and the `disabled` shortcuts red.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        model: Option<&LoadedModel>,
        selected: NodeId,
        disabled: &BTreeSet<NodeId>,
        commands: &mut Vec<Command>,
    ) {
        let Some(model) = model else {
            ui.weak("Loading the model…");
            return;
        };
        ui.horizontal_wrapped(|ui| {
            if ui.button("Fit").on_hover_text("Fit the diagram to the view (F)").clicked() {
                self.fit_requested = true;
            }
            if ui.button("Collapse all").on_hover_text("Close every block to one box").clicked() {
                self.expanded = default_expanded(&model.graph);
            }
            if ui.button("Expand all").on_hover_text("Open every block down to single ops").clicked() {
                self.expanded = (0..model.graph.blocks.len()).collect();
            }
            if ui.button("Export PNG…").on_hover_text("Save the diagram as it is on screen as a PNG").clicked() {
                commands.push(Command::ExportDiagram);
            }
            ui.weak(format!("zoom {:.0}%", self.zoom * 100.0))
                .on_hover_text("Ctrl+wheel or pinch zooms, dragging pans, F fits");
            ui.separator();
            for (label, color) in theme::legend() {
                let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
                ui.painter().rect_filled(rect, 2.0, color);
                ui.weak(label);
            }
        });
        let view = self;
        let bounds = view.layout(&model.graph, model.shapes.as_ref()).bounds;
        if view.fit_requested || !view.scene_rect.is_positive() {
            view.scene_rect = bounds;
            view.fit_requested = false;
        }
        if let Some(node) = view.focus.take()
            && let Some(layout) = &view.layout
            && let Some(&unit) = layout.unit_of.get(node)
        {
            // Close enough to read the node and its neighbours.
            let target = layout.rects[unit];
            let size = ui.available_size().max(egui::vec2(100.0, 100.0));
            let scale = (size.x / (target.width() * 6.0)).min(size.y / (target.height() * 12.0)).min(1.0);
            view.scene_rect = egui::Rect::from_center_size(target.center(), size / scale.max(0.05));
            view.follow = None;
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
}
