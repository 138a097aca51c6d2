//! Arbitrary bytes after a JPEG signature through `decode_image`: libjpeg-turbo's decoder
//! with the limits, the memory budget, the scan limit and the unwinding error handler of
//! jpeg.rs, without image_decode's libtorch preprocessing, so thousands of inputs a second
//! reach it instead of tens. A decoded image must have the pixels its header declared.
#![no_main]

use convscope_core::preprocess::decode_image;
use libfuzzer_sys::fuzz_target;

const SIGNATURE: [u8; 3] = [0xFF, 0xD8, 0xFF];

fuzz_target!(|bytes: &[u8]| {
    let mut jpeg = Vec::with_capacity(bytes.len() + 3);
    if !bytes.starts_with(&SIGNATURE) {
        jpeg.extend_from_slice(&SIGNATURE);
    }
    jpeg.extend_from_slice(bytes);
    let Ok(image) = decode_image(&jpeg) else { return };
    assert!(image.width() > 0 && image.height() > 0);
    assert_eq!(
        image.as_bytes().len() as u64,
        u64::from(image.width()) * u64::from(image.height()) * image.color().bytes_per_pixel() as u64
    );
});
