//! The images of a QR login code: SVG for the window and the API, PNG for
//! API clients that cannot show SVG. Both are drawn from the same payload.

use crate::error::{Result, ServiceError};

/// Pixels per QR module in the PNG: a phone camera reads the image off a
/// screen without scaling artefacts.
const PNG_MODULE_PIXELS: usize = 8;
/// The light border around the code, in modules (the QR standard's four).
const PNG_QUIET_ZONE: usize = 4;

pub(super) struct QrImages {
    pub svg: String,
    pub png: Vec<u8>,
}

/// Renders a QR payload as SVG and as PNG.
pub(super) fn render_qr(payload: &str) -> Result<QrImages> {
    let code = qrcode::QrCode::new(payload.as_bytes())
        .map_err(|e| ServiceError::internal(format!("cannot render the QR code: {e}")))?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(256, 256)
        .build();
    let png = png_of(&code)
        .map_err(|e| ServiceError::internal(format!("cannot encode the QR code as PNG: {e}")))?;
    Ok(QrImages { svg, png })
}

/// An 8-bit greyscale PNG: dark modules black, the rest and the quiet zone
/// white.
fn png_of(code: &qrcode::QrCode) -> std::result::Result<Vec<u8>, png::EncodingError> {
    let modules = code.width();
    let side = (modules + 2 * PNG_QUIET_ZONE) * PNG_MODULE_PIXELS;
    let mut pixels = vec![u8::MAX; side * side];
    for (index, color) in code.to_colors().into_iter().enumerate() {
        if color != qrcode::Color::Dark {
            continue;
        }
        let left = (index % modules + PNG_QUIET_ZONE) * PNG_MODULE_PIXELS;
        let top = (index / modules + PNG_QUIET_ZONE) * PNG_MODULE_PIXELS;
        for row in top..top + PNG_MODULE_PIXELS {
            let start = row * side + left;
            pixels[start..start + PNG_MODULE_PIXELS].fill(0);
        }
    }
    let side = u32::try_from(side).unwrap_or(u32::MAX);
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_codes_render_as_svg_and_png() {
        let images = render_qr("ref,noise,identity,adv,1").expect("renders");
        assert!(images.svg.contains("<svg"), "{}", images.svg);

        let decoder = png::Decoder::new(std::io::Cursor::new(images.png));
        let mut reader = decoder.read_info().expect("a PNG");
        let mut pixels = vec![0; reader.output_buffer_size().expect("a size")];
        let frame = reader.next_frame(&mut pixels).expect("one frame");
        assert_eq!(frame.color_type, png::ColorType::Grayscale);
        assert_eq!(frame.width, frame.height);
        assert_eq!(frame.width as usize % PNG_MODULE_PIXELS, 0);
        let pixels = &pixels[..frame.buffer_size()];
        // The quiet zone is light; the code has dark modules.
        assert_eq!(pixels[0], u8::MAX);
        assert!(pixels.contains(&0));
    }
}
