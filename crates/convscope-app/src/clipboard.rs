//! Pasting: what Ctrl+V hands over, what the Paste button reads from the system clipboard,
//! and the image either one names.

use std::path::{Path, PathBuf};

use convscope_core::session::ImageInput;

use crate::command::{Command, Pasted};

/// The name a pasted image goes by.
pub const PASTED_IMAGE: &str = "pasted image";

/// Ctrl+V: egui's integration reads the clipboard and hands over an image or text.
pub(crate) fn pasted(ctx: &egui::Context) -> Vec<Command> {
    // A focused text field (the picker's filter) takes pasted text as text.
    if ctx.text_edit_focused() {
        return Vec::new();
    }
    let pasted = ctx.input(|i| {
        i.events.iter().rev().find_map(|event| match event {
            egui::Event::PasteImage(image) => Some(Pasted::Image(image_input_from_color(image))),
            egui::Event::Paste(text) => Some(Pasted::Text(text.clone())),
            _ => None,
        })
    });
    pasted.map(Command::Paste).into_iter().collect()
}

/// egui's pasted image (premultiplied colours) as the worker takes pixels.
fn image_input_from_color(image: &egui::ColorImage) -> ImageInput {
    let rgba: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_srgba_unmultiplied()).collect();
    let [w, h] = image.size.map(|s| u32::try_from(s).unwrap_or(u32::MAX));
    ImageInput::Pixels { name: PASTED_IMAGE.to_owned(), size: [w, h], rgba: rgba.into() }
}

/// What a paste opens, or why it opens nothing.
pub(crate) fn image_from_pasted(pasted: Pasted) -> Result<ImageInput, String> {
    let path = match pasted {
        Pasted::Image(image) => return Ok(image),
        Pasted::Files(files) => files.into_iter().next().ok_or("The clipboard names no file")?,
        Pasted::Text(text) => path_from_pasted_text(&text)
            .ok_or_else(|| "The clipboard holds text, not an image nor the path of an image file".to_owned())?,
    };
    if path.is_file() {
        Ok(ImageInput::Path(path))
    } else {
        Err(format!("Pasted {}, which is not a file", path.display()))
    }
}

/// The path a pasted text names: its first line, unquoted, a `file://` URI decoded, `~`
/// expanded. Text that cannot be a path (several words on lines, nothing) gives `None`.
pub fn path_from_pasted_text(text: &str) -> Option<PathBuf> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line = line.trim_matches(|c| c == '"' || c == '\'');
    if let Some(uri) = line.strip_prefix("file://") {
        // `file:///home/me/cat%20photo.png`, or with a host: `file://localhost/…`.
        let path = uri.strip_prefix("localhost").unwrap_or(uri);
        return path.starts_with('/').then(|| PathBuf::from(percent_decoded(path)));
    }
    if let Some(rest) = line.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return Some(Path::new(&home).join(rest));
    }
    let extension = Path::new(line).extension().and_then(|e| e.to_str()).unwrap_or("");
    let has_extension = (1..=5).contains(&extension.len()) && extension.chars().all(char::is_alphanumeric);
    let looks_like_a_path = line.contains(['/', '\\']) || has_extension;
    looks_like_a_path.then(|| PathBuf::from(line))
}

/// `%20` and friends back to bytes; a malformed escape stays as it is.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The system clipboard, read off the UI thread: an X11 owner that is slow to answer must
/// not freeze the window. Every failure is a sentence for the user.
pub(crate) fn read_clipboard() -> Result<Pasted, String> {
    let mut clipboard = arboard::Clipboard::new().map_err(|e| format!("No clipboard to paste from: {e}"))?;
    match clipboard.get_image() {
        Ok(image) => {
            let size = [u32::try_from(image.width), u32::try_from(image.height)];
            let [Ok(w), Ok(h)] = size else { return Err("The image on the clipboard is too large".into()) };
            let rgba = image.bytes.into_owned();
            return Ok(Pasted::Image(ImageInput::Pixels {
                name: PASTED_IMAGE.to_owned(),
                size: [w, h],
                rgba: rgba.into(),
            }));
        }
        Err(arboard::Error::ContentNotAvailable) => {}
        Err(e) => return Err(format!("Could not read the image on the clipboard: {e}")),
    }
    if let Ok(files) = clipboard.get().file_list()
        && !files.is_empty()
    {
        return Ok(Pasted::Files(files));
    }
    match clipboard.get_text() {
        Ok(text) => Ok(Pasted::Text(text)),
        Err(arboard::Error::ContentNotAvailable) => Err("The clipboard holds no image, file or text".into()),
        Err(e) => Err(format!("Could not read the clipboard: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use convscope_core::paths;

    use super::*;

    #[test]
    fn pasted_text_names_a_file_as_file_managers_and_shells_copy_it() {
        let path = |text: &str| path_from_pasted_text(text);
        assert_eq!(path("/home/me/cat.png"), Some(PathBuf::from("/home/me/cat.png")));
        assert_eq!(path("  '/home/me/cat photo.png'\n"), Some(PathBuf::from("/home/me/cat photo.png")));
        assert_eq!(path("\"/tmp/a.jpg\""), Some(PathBuf::from("/tmp/a.jpg")));
        assert_eq!(path("file:///home/me/cat%20photo.png"), Some(PathBuf::from("/home/me/cat photo.png")));
        assert_eq!(path("file://localhost/tmp/x.png"), Some(PathBuf::from("/tmp/x.png")));
        assert_eq!(path("file:///tmp/first.png\nfile:///tmp/second.png"), Some(PathBuf::from("/tmp/first.png")));
        assert_eq!(path("cat.png"), Some(PathBuf::from("cat.png")));
        assert_eq!(path("file:///tmp/100%.png"), Some(PathBuf::from("/tmp/100%.png")), "a bare % stays");
        assert_eq!(path("hello there"), None);
        assert_eq!(path("Thanks, Mr. Smith"), None, "a sentence with a full stop is no file name");
        assert_eq!(path("   \n  "), None);
        assert_eq!(path("file://server"), None, "a host without a path");
    }

    #[test]
    fn pastes_that_open_nothing_say_why() {
        let text = |t: &str| image_from_pasted(Pasted::Text(t.to_owned())).map(|i| i.name());
        assert!(text("hello there").is_err_and(|e| e.contains("holds text")));
        assert!(text("/nonexistent/cat.png").is_err_and(|e| e.contains("not a file")));
        let cat = paths::asset("chelsea.png");
        assert_eq!(text(&format!("file://{}", cat.display())), Ok("chelsea.png".to_owned()));
        let files = image_from_pasted(Pasted::Files(vec![cat.clone(), PathBuf::from("/other.png")]));
        assert_eq!(files.map(|i| i.name()), Ok("chelsea.png".to_owned()));
        assert!(image_from_pasted(Pasted::Files(Vec::new())).is_err());
    }

    #[test]
    fn a_pasted_egui_image_reaches_the_worker_unpremultiplied() {
        let color = egui::ColorImage::from_rgba_unmultiplied([2, 1], &[255, 0, 0, 255, 10, 20, 30, 128]);
        let ImageInput::Pixels { name, size, rgba } = image_input_from_color(&color) else {
            panic!("pixels, not a path or bytes")
        };
        assert_eq!(name, PASTED_IMAGE);
        assert_eq!(size, [2, 1]);
        assert_eq!(&rgba[..4], &[255, 0, 0, 255]);
        // Premultiplied and back loses a little precision at half alpha.
        assert!(rgba[4..].iter().zip([10u8, 20, 30, 128]).all(|(&a, b)| a.abs_diff(b) <= 1), "{rgba:?}");
    }
}
