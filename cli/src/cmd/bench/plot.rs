//! `bctl bench --plot FILE.svg`: µs per vertex against graph size, cold and warm,
//! on log-log axes, as a self-contained SVG.

use std::fmt::Write as _;

/// One measured size.
pub struct Point {
    pub size: usize,
    pub cold_us: f64,
    pub warm_us: f64,
}

const W: f64 = 640.0;
const H: f64 = 400.0;
/// Margins: left, right, top, bottom.
const M: (f64, f64, f64, f64) = (70.0, 20.0, 40.0, 50.0);

/// The chart of `points` (sorted by size), titled `title`.
pub fn svg(title: &str, points: &[Point]) -> String {
    let xs: Vec<f64> = points
        .iter()
        .map(|p| (p.size.max(1) as f64).log10())
        .collect();
    let ys: Vec<f64> = points
        .iter()
        .flat_map(|p| [p.cold_us, p.warm_us])
        .map(|v| v.max(0.01).log10())
        .collect();
    let range = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min).floor();
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max).ceil();
        (lo, if hi > lo { hi } else { lo + 1.0 })
    };
    let ((x0, x1), (y0, y1)) = (range(&xs), range(&ys));
    let px = |x: f64| M.0 + (x - x0) / (x1 - x0) * (W - M.0 - M.1);
    let py = |y: f64| H - M.3 - (y - y0) / (y1 - y0) * (H - M.2 - M.3);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="14">{}</text>"#,
        W / 2.0,
        escape(title)
    );
    // Decades on both axes, with grid lines.
    for d in x0 as i32..=x1 as i32 {
        let x = px(f64::from(d));
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            M.2,
            H - M.3,
            H - M.3 + 16.0,
            10f64.powi(d)
        );
    }
    for d in y0 as i32..=y1 as i32 {
        let y = py(f64::from(d));
        let _ = writeln!(
            s,
            r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            M.0,
            W - M.1,
            M.0 - 6.0,
            y + 4.0,
            10f64.powi(d)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">vertices</text>"#,
        W / 2.0,
        H - 12.0
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">µs per vertex</text>"#,
        H / 2.0,
        H / 2.0
    );
    for (name, color, value) in [
        (
            "cold",
            "#c0392b",
            (|p: &Point| p.cold_us) as fn(&Point) -> f64,
        ),
        ("warm", "#2471a3", |p: &Point| p.warm_us),
    ] {
        let coords: Vec<String> = points
            .iter()
            .zip(&xs)
            .map(|(p, &x)| format!("{:.1},{:.1}", px(x), py(value(p).max(0.01).log10())))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline class="{name}" fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            coords.join(" ")
        );
        for c in &coords {
            let (cx, cy) = c.split_once(',').expect("x,y");
            let _ = writeln!(s, r#"<circle cx="{cx}" cy="{cy}" r="3" fill="{color}"/>"#);
        }
        let ly = if name == "cold" {
            M.2 + 10.0
        } else {
            M.2 + 26.0
        };
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{ly:.1}" fill="{color}">{name}</text>"#,
            W - M.1 - 40.0
        );
    }
    s.push_str("</svg>\n");
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_both_series_on_log_axes() {
        let points = [
            Point {
                size: 100,
                cold_us: 500.0,
                warm_us: 20.0,
            },
            Point {
                size: 1000,
                cold_us: 800.0,
                warm_us: 30.0,
            },
            Point {
                size: 10000,
                cold_us: 1600.0,
                warm_us: 300.0,
            },
        ];
        let svg = svg("chain <file>", &points);
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("chain &lt;file&gt;"));
        for class in ["cold", "warm"] {
            let line = svg
                .lines()
                .find(|l| l.contains(&format!(r#"class="{class}""#)))
                .unwrap();
            assert_eq!(line.matches(',').count(), 3, "{line}");
        }
        // Decade labels: 100 to 10000 vertices, 10 to 10000 µs.
        for label in [">100<", ">1000<", ">10000<", ">10<"] {
            assert!(svg.contains(label), "{label}");
        }
        assert_eq!(svg.matches("<circle").count(), 6);
        // The same input, the same bytes.
        assert_eq!(svg, super::svg("chain <file>", &points));
    }
}
