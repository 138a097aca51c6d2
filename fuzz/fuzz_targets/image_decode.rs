//! A dropped file's bytes through what the app and the CLI do with them: `decode_image_named`
//! (format sniffing, dimension and allocation limits, EXIF orientation), then one of the
//! zoo's preprocessings (chosen by the input's length, so a crash reproduces from its file).
//! The file is called `dropped.tga`, so bytes without a signature reach the TGA decoder, as
//! a file with that name would. A decoded image must always preprocess to the size the
//! architecture takes.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use convscope_core::preprocess::{Preprocess, decode_image_named};
use libfuzzer_sys::fuzz_target;

static PRESETS: OnceLock<Vec<Preprocess>> = OnceLock::new();

fuzz_target!(
    init: {
        // One libtorch thread: the fuzzer runs one job on a shared machine.
        tch::set_num_threads(1);
        PRESETS.get_or_init(|| {
            let mut presets: Vec<Preprocess> = Vec::new();
            for spec in convscope_core::zoo::all() {
                if !presets.contains(&spec.preprocess) {
                    presets.push(spec.preprocess);
                }
            }
            presets
        });
    },
    |bytes: &[u8]| {
        let Ok(image) = decode_image_named(bytes, Some(Path::new("dropped.tga"))) else { return };
        let presets = PRESETS.get().expect("set in init");
        let preprocess = presets[bytes.len() % presets.len()];
        let tensor = preprocess
            .apply(&image)
            .unwrap_or_else(|e| panic!("{}×{} image, {preprocess:?}: {e}", image.width(), image.height()));
        let size = tensor.size();
        assert_eq!(size[2..], preprocess.output_size(), "{preprocess:?}");
    }
);
