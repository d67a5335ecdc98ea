//! Reads a QR code back out of the SVG the service renders, the way a phone
//! camera would read the screen: the simulated phone scans what the admin sees.

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
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| pixels[y * width + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "exactly one QR code in the SVG");
    let (_, content) = grids[0].decode().unwrap();
    content
}
