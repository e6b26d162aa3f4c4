//! The results as a hand-written SVG chart (`sealrpc bench --plot`). Two
//! panels share one x axis of (transport, size) groups, with one bar per
//! series side by side: the mode, and tracing too when the results hold
//! both settings. Top: latency with one request in flight, p99 as a light
//! bar behind p50 (solid). Bottom: throughput with `inflight` in flight.
//! Each panel is linear from 0, or log10 when its values span over 20×.
use super::BenchResult;
use std::fmt::Write;

const LEFT: f64 = 80.0;
const RIGHT: f64 = 24.0;
const PANEL_H: f64 = 220.0;
const TOP1: f64 = 112.0;
const TOP2: f64 = TOP1 + PANEL_H + 96.0;

/// A y scale (from `lo` at the baseline to `hi` on top) and its ticks.
struct Scale {
    lo: f64,
    hi: f64,
    log: bool,
    ticks: Vec<f64>,
}

impl Scale {
    fn new(values: impl Iterator<Item = f64>) -> Scale {
        let (mut min, mut max) = (f64::INFINITY, 0.0f64);
        for v in values.filter(|v| v.is_finite() && *v > 0.0) {
            (min, max) = (min.min(v), max.max(v));
        }
        if max <= 0.0 {
            (min, max) = (1.0, 1.0);
        }
        // 1, 2, 5 × 10^k from `from` up.
        let steps =
            |from: f64| (0..).flat_map(move |k| [1.0, 2.0, 5.0].map(|m| m * from * 10f64.powi(k)));
        let log = max / min > 20.0;
        let (lo, hi, ticks) = if log {
            // A decade strictly below the least value: every bar shows.
            let lo = 10f64.powf((min * 0.95).log10().floor());
            let hi = steps(lo).find(|&t| t >= max * 0.999).unwrap_or(max);
            // Past four decades: powers of ten only, the top one too.
            let sparse = hi / lo > 1e4;
            let hi = if sparse {
                10f64.powf(max.log10().ceil())
            } else {
                hi
            };
            let pow10 = |t: f64| (t.log10() - t.log10().round()).abs() < 1e-9;
            let ticks = steps(lo).take_while(|&t| t <= hi * 1.001);
            (lo, hi, ticks.filter(|&t| !sparse || pow10(t)).collect())
        } else {
            let raw_step = max / 5.0;
            let step = steps(10f64.powf(raw_step.log10().floor()))
                .find(|&s| s >= raw_step)
                .unwrap_or(max);
            let n = (max / step - 1e-9).ceil().max(1.0) as usize;
            (
                0.0,
                n as f64 * step,
                (0..=n).map(|i| i as f64 * step).collect(),
            )
        };
        Scale { lo, hi, log, ticks }
    }

    /// Bar height for `v`, in pixels, within [0, PANEL_H].
    fn height(&self, v: f64) -> f64 {
        let f = if self.log {
            (v.max(self.lo) / self.lo).log10() / (self.hi / self.lo).log10()
        } else {
            v / self.hi
        };
        f.clamp(0.0, 1.0) * PANEL_H
    }
}

/// The chart as an SVG document. `title` goes on top (escaped); see the
/// module docs for the layout.
pub fn render_svg(results: &[BenchResult], title: &str) -> String {
    let both =
        results.iter().any(|r| r.tracing == "on") && results.iter().any(|r| r.tracing != "on");
    let series_of = |r: &BenchResult| (r.mode, if both { r.tracing } else { "" });
    let (mut groups, mut series) = (Vec::new(), Vec::new());
    for r in results {
        push_new(&mut groups, (r.transport, r.size));
        push_new(&mut series, series_of(r));
    }
    let (ng, ns) = (groups.len().max(1) as f64, series.len().max(1) as f64);
    let width = (LEFT + RIGHT + ng * (ns * 30.0 + 24.0))
        .max(720.0)
        .max(title.chars().count() as f64 * 8.5 + 40.0)
        .round();
    let group_w = (width - LEFT - RIGHT) / ng;
    let bar_w = ((group_w - 24.0) / ns).min(44.0);
    let height = TOP2 + PANEL_H + 56.0;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="28" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        width / 2.0,
        esc(title)
    );
    // The legend: a swatch per series, then how to read the latency bars.
    let mut legend: Vec<(String, &str, &str)> = series
        .iter()
        .map(|&(mode, tracing)| {
            let name = if both {
                format!("{mode}, tracing {tracing}")
            } else {
                mode.to_string()
            };
            (name, color(mode, tracing), "1")
        })
        .collect();
    legend.push(("p50 (solid)".into(), "#666", "1"));
    legend.push(("p99 (light)".into(), "#666", "0.35"));
    let mut x = LEFT;
    for (name, fill, opacity) in &legend {
        let _ = writeln!(
            o,
            r#"<rect class="legend" x="{x}" y="46" width="12" height="12" fill="{fill}" fill-opacity="{opacity}"/><text x="{}" y="56">{}</text>"#,
            x + 17.0,
            esc(name)
        );
        x += 17.0 + name.chars().count() as f64 * 6.5 + 20.0;
    }
    if results.is_empty() {
        let _ = writeln!(o, r#"<text x="{LEFT}" y="{TOP1}">no results</text>"#);
    }
    let lat = Scale::new(results.iter().flat_map(|r| [r.p50_us, r.p99_us]));
    let rps = Scale::new(results.iter().map(|r| r.req_per_s));
    let inflight = results.first().map_or(0, |r| r.inflight);
    let throughput = format!("throughput ({inflight} in flight)");
    for (top, scale, name, unit) in [
        (TOP1, &lat, "latency (1 in flight)", "µs"),
        (TOP2, &rps, &throughput, "req/s"),
    ] {
        axes(&mut o, top, width, scale, name, unit);
        for (i, &(transport, size)) in groups.iter().enumerate() {
            let (cx, y) = (LEFT + (i as f64 + 0.5) * group_w, top + PANEL_H);
            let _ = writeln!(
                o,
                r##"<text x="{cx:.1}" y="{}" text-anchor="middle" font-size="12" font-weight="bold">{}</text><text x="{cx:.1}" y="{}" text-anchor="middle" fill="#444">{}</text>"##,
                y + 16.0,
                esc(transport),
                y + 30.0,
                size_label(size)
            );
        }
    }
    for (row, r) in results.iter().enumerate() {
        let g = groups
            .iter()
            .position(|&k| k == (r.transport, r.size))
            .unwrap_or(0);
        let s = series.iter().position(|&k| k == series_of(r)).unwrap_or(0);
        let x = LEFT + g as f64 * group_w + (group_w - ns * bar_w) / 2.0 + s as f64 * bar_w;
        let fill = color(r.mode, if both { r.tracing } else { "" });
        let what = format!(
            "{} {} {} tracing {}",
            r.transport,
            size_label(r.size),
            r.mode,
            r.tracing
        );
        let bars = [
            ("p99", TOP1, &lat, r.p99_us, "0.35", "µs (p99)"),
            ("p50", TOP1, &lat, r.p50_us, "1", "µs (p50)"),
            ("rps", TOP2, &rps, r.req_per_s, "1", "req/s"),
        ];
        let mut tops = [0.0; 3];
        for (i, (class, top, scale, v, opacity, unit)) in bars.into_iter().enumerate() {
            let h = scale.height(v);
            tops[i] = top + PANEL_H - h;
            let _ = writeln!(
                o,
                r#"<rect class="{class}" data-row="{row}" x="{:.2}" y="{:.3}" width="{:.2}" height="{h:.3}" fill="{fill}" fill-opacity="{opacity}"><title>{}</title></rect>"#,
                x + 1.0,
                tops[i],
                bar_w - 2.0,
                esc(&format!("{what}: {v} {unit}"))
            );
        }
        // Values: above the p99 and throughput bars, inside p50 if it fits.
        let [y99, y50, yr] = tops;
        let mut labels = vec![
            (y99 - 3.0, r.p99_us, "#222"),
            (yr - 3.0, r.req_per_s, "#222"),
        ];
        if TOP1 + PANEL_H - y50 > 14.0 && y50 - y99 > 12.0 {
            labels.push((y50 + 11.0, r.p50_us, "white"));
        }
        for (y, v, fill) in labels {
            let _ = writeln!(
                o,
                r#"<text x="{:.1}" y="{y:.1}" text-anchor="middle" font-size="9" fill="{fill}">{}</text>"#,
                x + bar_w / 2.0,
                short(v)
            );
        }
    }
    o.push_str("</svg>\n");
    o
}

/// Grid lines, tick labels, the rotated axis title and the panel title.
fn axes(o: &mut String, top: f64, width: f64, scale: &Scale, name: &str, unit: &str) {
    let (bottom, right) = (top + PANEL_H, width - RIGHT);
    for &t in &scale.ticks {
        let y = bottom - scale.height(t);
        let _ = writeln!(
            o,
            r##"<line x1="{LEFT}" x2="{right}" y1="{y:.2}" y2="{y:.2}" stroke="#ddd"/><text class="tick" x="{}" y="{:.2}" text-anchor="end">{}</text>"##,
            LEFT - 6.0,
            y + 4.0,
            short(t)
        );
    }
    let axis = format!("{unit}{}", if scale.log { " (log scale)" } else { "" });
    let _ = writeln!(
        o,
        r##"<line x1="{LEFT}" x2="{LEFT}" y1="{top}" y2="{bottom}" stroke="#222"/><line x1="{LEFT}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#222"/>
<text transform="translate(20,{}) rotate(-90)" text-anchor="middle" font-size="12">{}</text>
<text x="{LEFT}" y="{}" font-size="13" font-weight="bold">{}</text>"##,
        top + PANEL_H / 2.0,
        esc(&axis),
        top - 20.0,
        esc(name)
    );
}

fn push_new<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// Sealed blue, loop green, raw orange; darker with tracing on (when both
/// are shown).
fn color(mode: &str, tracing: &str) -> &'static str {
    let (light, dark) = match mode {
        "sealed" => ("#2f6db5", "#163c6e"),
        "loop" => ("#3a9a5b", "#1f5e36"),
        "raw" => ("#e3872d", "#9a4f0d"),
        _ => ("#888888", "#444444"),
    };
    if tracing == "on" {
        dark
    } else {
        light
    }
}

/// 64 B, 1500 B, 64 KiB, 1 MiB.
fn size_label(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

/// 0.5, 23, 49.5k, 392k, 1.2M.
fn short(v: f64) -> String {
    let trim = |s: String| s.strip_suffix(".0").map(str::to_string).unwrap_or(s);
    match v.abs() {
        a if a >= 1e6 => trim(format!("{:.1}", v / 1e6)) + "M",
        a if a >= 1e5 => format!("{:.0}k", v / 1e3),
        a if a >= 1e3 => trim(format!("{:.1}", v / 1e3)) + "k",
        a if a >= 10.0 => format!("{v:.0}"),
        _ => trim(format!("{v:.1}")),
    }
}

/// XML escaping for text and attribute values.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use roxmltree::{Document, Node};

    fn row(
        transport: &'static str,
        size: usize,
        mode: &'static str,
        tracing: &'static str,
        lat: (f64, f64),
        rps: f64,
    ) -> BenchResult {
        let (p50_us, p99_us) = lat;
        BenchResult {
            transport,
            size,
            mode,
            tracing,
            inflight: 64,
            requests: 20000,
            p50_us,
            p99_us,
            p999_us: p99_us * 2.0,
            req_per_s: rps,
            mib_per_s: 1.0,
        }
    }

    fn num(n: Node, attr: &str) -> f64 {
        n.attribute(attr)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{attr} of {n:?}"))
    }

    /// The rects of one class, in row order (each row exactly once).
    fn bars<'a, 'i>(doc: &'a Document<'i>, class: &str, rows: usize) -> Vec<Node<'a, 'i>> {
        let mut found: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("rect") && n.attribute("class") == Some(class))
            .collect();
        found.sort_by_key(|n| num(*n, "data-row") as usize);
        let order: Vec<usize> = found.iter().map(|n| num(*n, "data-row") as usize).collect();
        assert_eq!(order, (0..rows).collect::<Vec<_>>(), "{class} bars");
        found
    }

    fn texts(doc: &Document) -> Vec<String> {
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap_or("").to_string())
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-3 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn one_bar_per_row_and_metric_proportional_on_a_linear_scale() {
        let rows = [
            row("tcp", 64, "sealed", "off", (20.0, 40.0), 50_000.0),
            row("tcp", 64, "raw", "off", (16.0, 30.0), 400_000.0),
            row("zmq", 64, "sealed", "off", (30.0, 60.0), 55_000.0),
            row("zmq", 64, "raw", "off", (25.0, 50.0), 77_000.0),
            row("ws", 1024, "sealed", "off", (27.0, 45.0), 41_000.0),
            row("ws", 1024, "raw", "off", (21.0, 35.0), 205_000.0),
        ];
        let svg = render_svg(&rows, "t");
        let doc = Document::parse(&svg).expect("well-formed XML");
        assert!(doc.root_element().has_tag_name("svg"));
        let (mut baselines, mut per_units) = (Vec::new(), Vec::new());
        for class in ["p50", "p99", "rps"] {
            let value = |r: &BenchResult| match class {
                "p50" => r.p50_us,
                "p99" => r.p99_us,
                _ => r.req_per_s,
            };
            let found = bars(&doc, class, rows.len());
            let per_unit = num(found[0], "height") / value(&rows[0]);
            let baseline = num(found[0], "y") + num(found[0], "height");
            for (n, r) in found.iter().zip(&rows) {
                let h = num(*n, "height");
                assert!(
                    close(h, per_unit * value(r)),
                    "{class}: height {h} for {}",
                    value(r)
                );
                assert!(
                    close(num(*n, "y") + h, baseline),
                    "{class}: bars share a baseline"
                );
                assert!(h <= PANEL_H + 1e-9);
            }
            let tallest = found.iter().map(|n| num(*n, "height")).fold(0.0, f64::max);
            // p50 shares the latency scale with p99, the taller.
            assert!(
                class == "p50" || tallest > PANEL_H / 2.0,
                "{class}: half the panel unused"
            );
            baselines.push(baseline);
            per_units.push(per_unit);
        }
        assert!(close(baselines[0], baselines[1]) && baselines[2] > baselines[0] + PANEL_H);
        assert!(
            close(per_units[0], per_units[1]),
            "p50 and p99 on one scale"
        );
        // Sealed and raw side by side in each group, one colour per mode.
        let rps = bars(&doc, "rps", rows.len());
        for pair in rps.chunks(2) {
            let (sealed, raw) = (pair[0], pair[1]);
            assert!(close(
                num(raw, "x") - num(sealed, "x"),
                num(sealed, "width") + 2.0
            ));
            assert_eq!(sealed.attribute("fill"), rps[0].attribute("fill"));
            assert_eq!(raw.attribute("fill"), rps[1].attribute("fill"));
        }
        assert_ne!(rps[0].attribute("fill"), rps[1].attribute("fill"));
        assert!(
            num(rps[2], "x") > num(rps[1], "x") + num(rps[1], "width"),
            "groups apart"
        );
    }

    #[test]
    fn log_scale_when_latencies_span_decades() {
        let rows = [
            row("tcp", 64, "sealed", "off", (15.0, 1400.0), 50_000.0),
            row("tcp", 64, "raw", "off", (100.0, 200.0), 60_000.0),
        ];
        let doc_text = render_svg(&rows, "t");
        let doc = Document::parse(&doc_text).expect("well-formed XML");
        let h = |class: &str, i: usize| num(bars(&doc, class, 2)[i], "height");
        let slope = (h("p99", 0) - h("p50", 0)) / (1400f64 / 15.0).log10();
        assert!(slope > 0.0);
        assert!(
            close((h("p99", 1) - h("p50", 1)) / 2f64.log10(), slope),
            "heights follow log10"
        );
        assert!(close(
            h("p50", 1) - h("p50", 0),
            slope * (100f64 / 15.0).log10()
        ));
        let texts = texts(&doc);
        for want in ["µs (log scale)", "req/s", "10", "100", "1k"] {
            assert!(texts.iter().any(|t| t == want), "{want} in {texts:?}");
        }
        // The least value is never on the baseline, even a power of ten.
        assert!(Scale::new([10.0, 1000.0].into_iter()).height(10.0) > 1.0);
        // Six decades: ticks at the powers of ten only.
        let ticks: Vec<String> = Scale::new([1.5, 400_000.0].into_iter())
            .ticks
            .into_iter()
            .map(short)
            .collect();
        assert_eq!(ticks, ["1", "10", "100", "1k", "10k", "100k", "1M"]);
    }

    #[test]
    fn labels_title_and_legend_present_and_escaped() {
        let rows = [
            row("t<&>", 64, "sealed", "off", (20.0, 40.0), 50_000.0),
            row("t<&>", 64, "raw", "off", (16.0, 30.0), 400_000.0),
            row("tcp", 65536, "sealed", "off", (90.0, 150.0), 20_000.0),
        ];
        let title = r#"bench <b> & "q" 'x'"#;
        let svg = render_svg(&rows, title);
        assert!(
            !svg.contains("<b>") && !svg.contains("t<&>") && !svg.contains("& \""),
            "{svg}"
        );
        let doc = Document::parse(&svg).expect("well-formed XML");
        let texts = texts(&doc);
        for want in [
            title,
            "t<&>",
            "tcp",
            "64 B",
            "64 KiB",
            "latency (1 in flight)",
            "throughput (64 in flight)",
            "sealed",
            "raw",
            "p50 (solid)",
            "p99 (light)",
            "µs",
            "req/s",
            "400k",
            "50k",
        ] {
            assert!(texts.iter().any(|t| t == want), "{want} in {texts:?}");
        }
        let tips: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("title"))
            .filter_map(|n| n.text())
            .collect();
        assert!(
            tips.contains(&"t<&> 64 B raw tracing off: 400000 req/s"),
            "{tips:?}"
        );
    }

    #[test]
    fn tracing_on_and_off_are_separate_series() {
        let rows = [
            row("tcp", 64, "sealed", "off", (20.0, 40.0), 50_000.0),
            row("tcp", 64, "sealed", "on", (22.0, 45.0), 45_000.0),
            row("tcp", 64, "raw", "off", (16.0, 30.0), 400_000.0),
        ];
        let svg = render_svg(&rows, "t");
        let doc = Document::parse(&svg).expect("well-formed XML");
        let texts = texts(&doc);
        for want in [
            "sealed, tracing off",
            "sealed, tracing on",
            "raw, tracing off",
        ] {
            assert!(texts.iter().any(|t| t == want), "{want} in {texts:?}");
        }
        let rps = bars(&doc, "rps", 3);
        let fills: Vec<_> = rps.iter().map(|n| n.attribute("fill")).collect();
        assert!(
            fills[0] != fills[1] && fills[1] != fills[2] && fills[0] != fills[2],
            "{fills:?}"
        );
        assert!(num(rps[0], "x") < num(rps[1], "x") && num(rps[1], "x") < num(rps[2], "x"));
        // One setting only: no tracing in the legend.
        let one = render_svg(&rows[..1], "t");
        assert!(!one.contains("tracing off<") && one.contains(">sealed<"));
    }

    #[test]
    fn empty_results_still_render_an_svg() {
        let svg = render_svg(&[], "nothing");
        let doc = Document::parse(&svg).expect("well-formed XML");
        assert!(doc.descendants().all(|n| n.attribute("data-row").is_none()));
        assert!(texts(&doc).iter().any(|t| t == "no results"));
    }

    #[test]
    fn number_and_size_labels() {
        let got: Vec<_> = [392_077.0, 49_505.0, 1351.6, 23.6, 0.5, 2e6, 0.0]
            .map(short)
            .into();
        assert_eq!(got, ["392k", "49.5k", "1.4k", "24", "0.5", "2M", "0"]);
        let sizes: Vec<_> = [64, 1500, 1024, 65536, 1 << 20].map(size_label).into();
        assert_eq!(sizes, ["64 B", "1500 B", "1 KiB", "64 KiB", "1 MiB"]);
    }
}
