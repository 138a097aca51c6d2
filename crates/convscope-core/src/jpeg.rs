//! JPEG decoded by libjpeg-turbo's decoder, set up as Pillow sets it up, so that a photo gives
//! the pixels `Image.open(path).convert("RGB")` gives a PyTorch notebook. The `image` crate's
//! JPEG decoder has its own IDCT and upsampling: its pixels differ by a few levels, enough to
//! move top-5 probabilities by 1e-3.
//!
//! The decoder is mozjpeg's copy of libjpeg-turbo's, built from C by `mozjpeg-sys` without
//! SIMD, so that no nasm is needed: libjpeg-turbo's SIMD (Pillow's) gives the same bytes as
//! its C for the islow IDCT, fancy upsampling and colour conversion Pillow uses, except in
//! blocks whose damaged data dequantizes out of any real image's range.
//!
//! libjpeg reports a fatal error by calling `error_exit`, which must not return; ours unwinds
//! (`resume_unwind`, so no panic hook runs) through the C frames, built with `-fexceptions`
//! for that, to the `catch_unwind` in [`decode`]. The unwound libjpeg state is only ever
//! destroyed, as after the usual `longjmp`.

use std::any::Any;
use std::ffi::{c_int, c_long};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, RgbImage};
use mozjpeg_sys::{
    J_COLOR_SPACE, J_DCT_METHOD, JSAMPROW_MUT, jpeg_common_struct, jpeg_decompress_struct, jpeg_destroy_decompress,
    jpeg_error_mgr, jpeg_progress_mgr, jpeg_source_mgr,
};

#[cfg(panic = "abort")]
compile_error!("jpeg.rs turns libjpeg's errors into an unwind: with panic = \"abort\" a corrupt JPEG would abort");

/// jpeg_read_header's answer for a datastream of tables only (jpeglib.h).
const JPEG_HEADER_TABLES_ONLY: c_int = 2;

/// A progressive JPEG's scans each pass over the whole image; an encoder writes about ten. A
/// few kilobytes of empty scans over a large image would otherwise take minutes.
pub(crate) const MAX_SCANS: c_int = 100;

/// A JPEG's pixels (grey or RGB) and the orientation its EXIF says to show it in.
pub(crate) struct Jpeg {
    pub image: DynamicImage,
    pub orientation: Orientation,
}

#[derive(Debug)]
pub(crate) enum JpegError {
    /// Over `max_side` in the header, or more than `max_bytes` to decode.
    TooLarge,
    /// The file ends before the picture does.
    Truncated,
    TooManyScans,
    /// Neither grey, RGB nor CMYK (Pillow refuses those too).
    Components(c_int),
    /// libjpeg's own sentence: a corrupt table or marker, an unsupported precision or process.
    Libjpeg(String),
}

/// Decodes a JPEG as Pillow does, refusing from the header an image wider or taller than
/// `max_side`, and any that needs more than `max_bytes` (pixels and libjpeg's buffers).
pub(crate) fn decode(bytes: &[u8], max_side: u32, max_bytes: u64) -> Result<Jpeg, JpegError> {
    let mut decoder = Box::new(Decoder::new(bytes));
    match catch_unwind(AssertUnwindSafe(|| decoder.run(max_side, max_bytes))) {
        Ok(result) => result,
        Err(payload) => Err(jpeg_error_from(payload)),
    }
}

fn jpeg_error_from(payload: Box<dyn Any + Send>) -> JpegError {
    match payload.downcast::<JpegError>() {
        Ok(error) => *error,
        // A bug of ours, not the file's: let it be the panic it is.
        Err(other) => resume_unwind(other),
    }
}

/// libjpeg keeps pointers to the error, source and progress managers: they live beside the
/// decompressor in one box that does not move until it is dropped.
struct Decoder<'a> {
    cinfo: jpeg_decompress_struct,
    err: jpeg_error_mgr,
    source: jpeg_source_mgr,
    progress: jpeg_progress_mgr,
    bytes: &'a [u8],
}

impl<'a> Decoder<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        // SAFETY: every field of these C structs is an integer, a pointer, an `Option` of a
        // function pointer or an enum whose zero is a variant: all zeros is a valid value.
        unsafe {
            Decoder {
                cinfo: std::mem::zeroed(),
                err: std::mem::zeroed(),
                source: std::mem::zeroed(),
                progress: std::mem::zeroed(),
                bytes,
            }
        }
    }

    /// May unwind with a `JpegError` from inside libjpeg.
    fn run(&mut self, max_side: u32, max_bytes: u64) -> Result<Jpeg, JpegError> {
        // SAFETY: the managers outlive `cinfo` (same box, dropped after `jpeg_destroy`), the
        // source points into `self.bytes`, which outlives the box, and the row pointers
        // handed to `jpeg_read_scanlines` point into buffers of `output_width` samples per
        // component, as it writes.
        unsafe {
            mozjpeg_sys::jpeg_std_error(&mut self.err);
            self.err.error_exit = Some(error_exit);
            self.err.emit_message = Some(ignore_message);
            self.err.output_message = Some(ignore_output);
            self.cinfo.common.err = &mut self.err;
            mozjpeg_sys::jpeg_create_decompress(&mut self.cinfo);

            self.source.next_input_byte = self.bytes.as_ptr();
            self.source.bytes_in_buffer = self.bytes.len();
            self.source.init_source = Some(no_op);
            self.source.fill_input_buffer = Some(ran_out);
            self.source.skip_input_data = Some(skip_input_data);
            self.source.resync_to_restart = Some(mozjpeg_sys::jpeg_resync_to_restart);
            self.source.term_source = Some(no_op);
            self.cinfo.src = &mut self.source;
            self.progress.progress_monitor = Some(count_scans);
            self.cinfo.common.progress = &mut self.progress;
            mozjpeg_sys::jpeg_save_markers(&mut self.cinfo, EXIF_MARKER, 0xFFFF);

            // Pillow's loop: tables-only datastreams before the image are read and skipped.
            while mozjpeg_sys::jpeg_read_header(&mut self.cinfo, 0) == JPEG_HEADER_TABLES_ONLY {}
            let cinfo = &mut self.cinfo;
            let (width, height) = (cinfo.image_width, cinfo.image_height);
            if width > max_side || height > max_side {
                return Err(JpegError::TooLarge);
            }
            let (out_color_space, samples) = match cinfo.num_components {
                1 => (J_COLOR_SPACE::JCS_GRAYSCALE, 1),
                3 => (J_COLOR_SPACE::JCS_RGB, 3),
                4 => (J_COLOR_SPACE::JCS_CMYK, 4),
                n => return Err(JpegError::Components(n)),
            };
            let channels: u64 = if samples == 1 { 1 } else { 3 };
            let pixel_bytes = u64::from(width) * u64::from(height) * channels;
            if pixel_bytes > max_bytes {
                return Err(JpegError::TooLarge);
            }
            // What libjpeg may allocate besides: a progressive image's coefficients (2 bytes a
            // sample) dominate. Past it, libjpeg asks for a backing store, which it has not.
            // Zero would mean no limit.
            (*cinfo.common.mem).max_memory_to_use =
                c_long::try_from(max_bytes - pixel_bytes).unwrap_or(c_long::MAX).max(1);
            // Pillow's settings, which are libjpeg's defaults (block smoothing on included):
            // written out because they are what makes the pixels equal.
            cinfo.out_color_space = out_color_space;
            cinfo.dct_method = J_DCT_METHOD::JDCT_ISLOW;
            cinfo.do_fancy_upsampling = 1;
            cinfo.scale_num = 1;
            cinfo.scale_denom = 1;
            mozjpeg_sys::jpeg_start_decompress(cinfo);
            if (cinfo.output_width, cinfo.output_height) != (width, height) || cinfo.output_components != samples {
                return Err(JpegError::Libjpeg("unexpected output layout".into()));
            }
            let orientation = exif_orientation(cinfo);

            let (w, h) = (width as usize, height as usize);
            let image = if samples == 4 {
                let mut rgb = vec![0u8; w * h * 3];
                let mut cmyk = vec![0u8; w * 4];
                for out_row in rgb.chunks_exact_mut(w * 3) {
                    read_rows(cinfo, &mut cmyk, w * 4);
                    for (rgb, cmyk) in out_row.chunks_exact_mut(3).zip(cmyk.chunks_exact(4)) {
                        rgb.copy_from_slice(&rgb_from_adobe_cmyk([cmyk[0], cmyk[1], cmyk[2], cmyk[3]]));
                    }
                }
                DynamicImage::ImageRgb8(RgbImage::from_raw(width, height, rgb).ok_or(JpegError::TooLarge)?)
            } else {
                let stride = w * samples as usize;
                let mut pixels = vec![0u8; stride * h];
                read_rows(cinfo, &mut pixels, stride);
                if samples == 1 {
                    DynamicImage::ImageLuma8(GrayImage::from_raw(width, height, pixels).ok_or(JpegError::TooLarge)?)
                } else {
                    DynamicImage::ImageRgb8(RgbImage::from_raw(width, height, pixels).ok_or(JpegError::TooLarge)?)
                }
            };
            // No jpeg_finish_decompress: it would only read on to the end marker, and Pillow
            // keeps an image whose rows are all there whatever follows them.
            Ok(Jpeg { image, orientation })
        }
    }
}

impl Drop for Decoder<'_> {
    fn drop(&mut self) {
        // SAFETY: frees libjpeg's pools; a no-op before jpeg_create_decompress (mem is null),
        // valid in any state after it, an unwound error included.
        unsafe { jpeg_destroy_decompress(&mut self.cinfo) }
    }
}

/// Fills `buffer` with whole rows of `stride` bytes, as many as it holds, from the next
/// output row on.
///
/// # Safety
/// `cinfo` is started, with `stride` bytes a row, and has at least `buffer.len() / stride`
/// rows left.
unsafe fn read_rows(cinfo: &mut jpeg_decompress_struct, buffer: &mut [u8], stride: usize) {
    // A few rows a call: libjpeg produces up to `rec_outbuf_height` at once.
    for chunk in buffer.chunks_mut(stride * 16) {
        let mut rows: Vec<JSAMPROW_MUT> = chunk.chunks_exact_mut(stride).map(|row| row.as_mut_ptr()).collect();
        let mut done = 0;
        while done < rows.len() {
            let left = (rows.len() - done) as u32;
            // SAFETY: each pointer is a distinct row of `stride` bytes in `buffer`.
            let read = unsafe { mozjpeg_sys::jpeg_read_scanlines(cinfo, rows[done..].as_mut_ptr(), left) };
            if read == 0 {
                // Only a suspending source returns no rows; ours errors instead. Never loop.
                error(JpegError::Truncated);
            }
            done += read as usize;
        }
    }
}

const EXIF_MARKER: c_int = 0xE1;

/// The orientation of the first APP1 segment that is EXIF, as `image`'s decoders read it.
fn exif_orientation(cinfo: &jpeg_decompress_struct) -> Orientation {
    let mut marker = cinfo.marker_list;
    // SAFETY: libjpeg's list of saved markers, each with `data_length` bytes at `data`,
    // owned by `cinfo` and unchanged while it is borrowed.
    while let Some(saved) = unsafe { marker.as_ref() } {
        if saved.marker as c_int == EXIF_MARKER && !saved.data.is_null() {
            let data = unsafe { std::slice::from_raw_parts(saved.data, saved.data_length as usize) };
            if let Some(tiff) = data.strip_prefix(b"Exif\0\0") {
                return Orientation::from_exif_chunk(tiff).unwrap_or(Orientation::NoTransforms);
            }
        }
        marker = saved.next;
    }
    Orientation::NoTransforms
}

/// Pillow reads a 4-component JPEG as Adobe's inverted CMYK ("CMYK;I") and its
/// `convert("RGB")` takes each ink against the key: `255 - k - c·(255 - k)/255`, rounded
/// its way. libjpeg gives the inverted values, `ink = 255 - value`.
fn rgb_from_adobe_cmyk(inverted: [u8; 4]) -> [u8; 3] {
    let [c, m, y, k] = inverted.map(|v| 255 - i32::from(v));
    let not_k = 255 - k;
    let muldiv255 = |a: i32, b: i32| {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    };
    [c, m, y].map(|ink| (not_k - muldiv255(ink, not_k)).clamp(0, 255) as u8)
}

fn error(error: JpegError) -> ! {
    // Without the panic hook: the crash reporter and the fuzzer's abort-on-panic never see it.
    resume_unwind(Box::new(error))
}

unsafe extern "C-unwind" fn error_exit(cinfo: &mut jpeg_common_struct) {
    // SAFETY: libjpeg calls this with `err` set up by `jpeg_std_error`.
    let err = unsafe { &*cinfo.err };
    if err.msg_code == mozjpeg_sys::JERR_NO_BACKING_STORE {
        error(JpegError::TooLarge);
    }
    let mut buffer = [0u8; 80];
    if let Some(format) = err.format_message {
        // SAFETY: libjpeg's format_message writes at most JMSG_LENGTH_MAX (80) bytes, NUL
        // included, into its buffer; mozjpeg-sys declares that buffer `&[u8; 80]` where C's
        // is a `char *` it writes to, hence a pointer here.
        unsafe {
            let format: unsafe extern "C-unwind" fn(&mut jpeg_common_struct, *mut u8) = std::mem::transmute(format);
            format(cinfo, buffer.as_mut_ptr());
        }
    }
    let text = buffer.split(|&b| b == 0).next().unwrap_or_default();
    error(JpegError::Libjpeg(String::from_utf8_lossy(text).into_owned()))
}

/// Warnings (corrupt entropy data, extraneous bytes) are not errors to Pillow, nor to us.
unsafe extern "C-unwind" fn ignore_message(_cinfo: &mut jpeg_common_struct, _level: c_int) {}

unsafe extern "C-unwind" fn ignore_output(_cinfo: &mut jpeg_common_struct) {}

unsafe extern "C-unwind" fn no_op(_cinfo: &mut jpeg_decompress_struct) {}

/// The whole file is in the buffer from the start: asking for more means it ended early.
/// Pillow refuses such a file ("image file is truncated"), even one missing only its end
/// marker.
unsafe extern "C-unwind" fn ran_out(_cinfo: &mut jpeg_decompress_struct) -> mozjpeg_sys::boolean {
    error(JpegError::Truncated)
}

unsafe extern "C-unwind" fn skip_input_data(cinfo: &mut jpeg_decompress_struct, count: c_long) {
    // SAFETY: `src` is the decoder's own source manager, over the file's bytes.
    let source = unsafe { &mut *cinfo.src };
    let Ok(count) = usize::try_from(count) else { return };
    if count > source.bytes_in_buffer {
        error(JpegError::Truncated);
    }
    // SAFETY: within the buffer, just checked.
    source.next_input_byte = unsafe { source.next_input_byte.add(count) };
    source.bytes_in_buffer -= count;
}

unsafe extern "C-unwind" fn count_scans(cinfo: &mut jpeg_common_struct) {
    if cinfo.is_decompressor != 0 {
        // SAFETY: a decompressor's common fields are the start of its struct.
        let cinfo = unsafe { &*(cinfo as *const jpeg_common_struct).cast::<jpeg_decompress_struct>() };
        if cinfo.input_scan_number > MAX_SCANS {
            error(JpegError::TooManyScans);
        }
    }
}
