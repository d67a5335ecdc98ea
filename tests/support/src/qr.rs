//! Reads a QR code back out of the SVG or PNG the service renders, the way a
//! phone camera would read the screen: the simulated phone scans what the
//! admin sees.

/// The payload of the QR code drawn in `svg` (as rendered by the `qrcode`
/// crate: one path of `M{x} {y}h{w}v{h}H{x}V{y}` rectangles).
pub fn qr_payload(svg: &str) -> String {
    let number_after = |key: &str| -> usize {
        let rest = &svg[svg.find(key).unwrap() + key.len()..];
        rest[..rest.find('"').unwrap()].parse().unwrap()
    };
    let width = number_after(" width=\"");
    let height = number_after(" height=\"");
    let path = svg.split(" d=\"").nth(1).unwrap();
    let path = &path[..path.find('"').unwrap()];
    let mut pixels = vec![255u8; width * height];
    for rect in path.split('M').skip(1) {
        let nums: Vec<usize> = rect
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        let (left, top, w, h) = (nums[0], nums[1], nums[2], nums[3]);
        for y in top..top + h {
            for x in left..left + w {
                pixels[y * width + x] = 0;
            }
        }
    }
    decode_greyscale(width, height, &pixels)
}

/// The payload of the QR code in an 8-bit greyscale `png`.
pub fn png_qr_payload(png: &[u8]) -> String {
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(frame.color_type, png::ColorType::Grayscale);
    assert_eq!(frame.bit_depth, png::BitDepth::Eight);
    decode_greyscale(
        frame.width as usize,
        frame.height as usize,
        &pixels[..frame.buffer_size()],
    )
}

fn decode_greyscale(width: usize, height: usize, pixels: &[u8]) -> String {
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| pixels[y * width + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "exactly one QR code in the image");
    let (_, content) = grids[0].decode().unwrap();
    content
}
