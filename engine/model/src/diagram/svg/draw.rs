//! Drawing: one arrow along its route, one box with its lines, and the
//! text helpers they share.

use std::fmt::Write as _;

use super::*;

/// Draws one arrow; `lanes` counts the arrows routed around the boxes, so
/// that each takes its own lane.
pub(super) fn draw_arrow(
    c: &mut Canvas,
    lay: &Layout,
    boxes: &[SvgBox<'_>],
    a: &Arrow<'_>,
    look: &Look,
    lanes: &mut usize,
) {
    let (k, of) = look.rank;
    let (from, to) = (&boxes[a.from], &boxes[a.to]);
    let (cu, cv) = (lay.centre(a.from), lay.centre(a.to));
    let (lu, lv) = (lay.layer[a.from], lay.layer[a.to]);
    let text = shorten(&a.label, EDGE_CHARS);
    // The path, the points that bound it, where the label goes, and the
    // kind of route as a class.
    let mut d = String::new();
    let mut points: Vec<(f64, f64)> = Vec::new();
    let label: (f64, f64, Anchor);
    let mut class = "";
    if a.from == a.to {
        // A loop on the box's right side, each further one reaching further.
        class = " self";
        let r = cu.0 + from.w / 2.0;
        let reach = LOOP_REACH + LOOP_STEP * k as f64;
        let (y0, y1) = (cu.1 - 10.0, cu.1 + 10.0);
        let _ = write!(
            d,
            "M{} {}C{} {} {} {} {} {}",
            Px(r),
            Px(y0),
            Px(r + reach),
            Px(y0 - reach / 2.0),
            Px(r + reach),
            Px(y1 + reach / 2.0),
            Px(r),
            Px(y1)
        );
        points.extend([(r, y0 - reach / 2.0), (r + reach, y1 + reach / 2.0)]);
        let dy = 13.0 * k as f64 - 6.5 * (of as f64 - 1.0);
        label = (r + 0.75 * reach + 4.0, cu.1 + 4.0 + dy, Anchor::Start);
    } else if laid_out(lu, lv) {
        // Forward: from the bottom of one box to the top of the other,
        // through the dummy nodes of the layers in between.
        let p0 = (cu.0, cu.1 + from.h / 2.0);
        let p1 = (cv.0, cv.1 - to.h / 2.0);
        let chain = lay.via.get(&(a.from, a.to)).map_or(&[][..], Vec::as_slice);
        if chain.is_empty() && of > 1 {
            // Several arrows between the same boxes: bend each its own way.
            let (dx, dy) = (p1.0 - p0.0, p1.1 - p0.1);
            let len = dx.hypot(dy).max(1.0);
            let normal = (-dy / len, dx / len);
            let off = (k as f64 - (of as f64 - 1.0) / 2.0) * BEND;
            let mid = ((p0.0 + p1.0) / 2.0, (p0.1 + p1.1) / 2.0);
            let ctrl = (mid.0 + normal.0 * 2.0 * off, mid.1 + normal.1 * 2.0 * off);
            let _ = write!(
                d,
                "M{} {}Q{} {} {} {}",
                Px(p0.0),
                Px(p0.1),
                Px(ctrl.0),
                Px(ctrl.1),
                Px(p1.0),
                Px(p1.1)
            );
            points.extend([p0, ctrl, p1]);
            // The label beside the bend, on its outer side.
            let apex = (mid.0 + normal.0 * off, mid.1 + normal.1 * off);
            let anchor = if apex.0 < mid.0 - 0.5 {
                Anchor::End
            } else if apex.0 > mid.0 + 0.5 {
                Anchor::Start
            } else {
                Anchor::Middle
            };
            let side = match anchor {
                Anchor::Start => 3.0,
                Anchor::End => -3.0,
                Anchor::Middle => 0.0,
            };
            label = (apex.0 + side, apex.1 + 4.0, anchor);
        } else {
            points.push(p0);
            for &n in chain {
                let l = lay.layer[n];
                points.push((lay.x[n], lay.band_top[l]));
                points.push((lay.x[n], lay.band_bottom(l)));
            }
            points.push(p1);
            for (i, p) in points.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{} {}",
                    if i == 0 { 'M' } else { 'L' },
                    Px(p.0),
                    Px(p.1)
                );
            }
            // On the first stretch, which crosses the gap below the source.
            let f = look.along;
            let q = points.get(1).copied().unwrap_or(p1);
            label = (
                p0.0 + (q.0 - p0.0) * f,
                p0.1 + (q.1 - p0.1) * f + 4.0,
                Anchor::Middle,
            );
        }
    } else {
        // Back to an earlier layer, far down, or within one (only states
        // not reachable from the start share a layer): out through the gap
        // below the source, then in its own lane around the boxes.
        let j = *lanes;
        *lanes += 1;
        let lane = 8.0 + 6.0 * (j % 4) as f64;
        let out_y = lay.band_bottom(lu) + lane;
        if lv != lu {
            // Up (or down) the right-hand side of every layer in between,
            // then into the target's top through the gap above it.
            if lv < lu {
                class = " back";
            }
            let side = (lu.min(lv)..=lu.max(lv))
                .filter_map(|l| lay.right.get(l).copied())
                .fold(
                    (cu.0 + from.w / 2.0 + from.loop_room).max(cv.0 + to.w / 2.0 + to.loop_room),
                    f64::max,
                )
                + 20.0
                + 12.0 * (j % 6) as f64;
            let (ax, bx) = (cu.0 + from.w / 4.0, cv.0 + to.w / 4.0);
            let in_y = lay.band_top[lv] - lane;
            points.extend([
                (ax, cu.1 + from.h / 2.0),
                (ax, out_y),
                (side, out_y),
                (side, in_y),
                (bx, in_y),
                (bx, cv.1 - to.h / 2.0),
            ]);
            label = (side + 4.0, (out_y + in_y) / 2.0 + 4.0, Anchor::Start);
        } else {
            // Along the gap below the layer, into the target's bottom.
            let (ax, bx) = (cu.0 - from.w / 4.0, cv.0 - to.w / 4.0);
            points.extend([
                (ax, cu.1 + from.h / 2.0),
                (ax, out_y),
                (bx, out_y),
                (bx, cv.1 + to.h / 2.0),
            ]);
            label = ((ax + bx) / 2.0, out_y + 14.0, Anchor::Middle);
        }
        for (i, p) in points.iter().enumerate() {
            let _ = write!(
                d,
                "{}{} {}",
                if i == 0 { 'M' } else { 'L' },
                Px(p.0),
                Px(p.1)
            );
        }
    }
    for &(x, y) in &points {
        c.see(x, y);
    }
    c.see_label(label.0, label.1, text.chars().count(), label.2);
    let (marker, taken_class) = if look.taken {
        ("weft-arrow-taken", " taken")
    } else {
        ("weft-arrow", "")
    };
    let anchor = match label.2 {
        Anchor::Start => "start",
        Anchor::Middle => "middle",
        Anchor::End => "end",
    };
    let _ = writeln!(
        c.out,
        "<g class=\"edge{taken_class}{class}\" data-from=\"{}\" data-to=\"{}\" data-event=\"{}\"><title>{}</title><path d=\"{d}\" marker-end=\"url(#{marker})\"/><text x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text></g>",
        escape_xml(from.name),
        escape_xml(to.name),
        escape_xml(a.event),
        escape_xml(&a.label),
        Px(label.0),
        Px(label.1),
        escape_xml(&text)
    );
}

/// Draws state `i`'s box, with its `mark` (`current` or `visited`) and a
/// badge for `count` instances in it (none for 0).
pub(super) fn draw_box(
    c: &mut Canvas,
    lay: &Layout,
    i: usize,
    b: &SvgBox<'_>,
    mark: Option<&str>,
    count: usize,
) {
    let (cx, cy) = lay.centre(i);
    let (left, top) = (cx - b.w / 2.0, cy - b.h / 2.0);
    c.see(left, top);
    c.see(left + b.w, top + b.h);
    let mark = mark.map(|m| format!(" {m}")).unwrap_or_default();
    let data_count = if count > 0 {
        format!(" data-count=\"{count}\"")
    } else {
        String::new()
    };
    let _ = writeln!(
        c.out,
        "<g class=\"state {}{mark}\" data-state=\"{}\"{data_count}>",
        b.kind,
        escape_xml(b.name)
    );
    let _ = writeln!(c.out, "<title>{}</title>", escape_xml(&b.label));
    let rx = match b.kind {
        "succeed" | "fail" => 16.0_f64.min(b.h / 2.0),
        "compensate" | "fan" => 3.0,
        _ => 8.0,
    };
    if b.kind == "fan" {
        // A second box peeking out behind: there is more inside.
        let _ = writeln!(
            c.out,
            "<rect class=\"stack\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"{}\"/>",
            Px(left + 4.0),
            Px(top - 4.0),
            Px(b.w),
            Px(b.h),
            Px(rx)
        );
        c.see(left + b.w + 4.0, top - 4.0);
    }
    let _ = writeln!(
        c.out,
        "<rect class=\"box\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"{}\"/>",
        Px(left),
        Px(top),
        Px(b.w),
        Px(b.h),
        Px(rx)
    );
    let _ = write!(
        c.out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">",
        Px(cx),
        Px(top + PAD_Y + 12.0)
    );
    for (n, line) in b.lines.iter().enumerate() {
        if n == 0 {
            let _ = write!(c.out, "<tspan class=\"name\">{}</tspan>", escape_xml(line));
        } else {
            let _ = write!(
                c.out,
                "<tspan x=\"{}\" dy=\"{}\">{}</tspan>",
                Px(cx),
                Px(LINE_H),
                escape_xml(line)
            );
        }
    }
    c.out.push_str("</text>\n");
    if count > 0 {
        // A pill on the top right corner.
        let digits = count.to_string();
        let w = (digits.len() as f64 * 7.0 + 10.0).max(18.0);
        let (bx, by) = (left + b.w - 6.0, top);
        let _ = writeln!(
            c.out,
            "<rect class=\"count\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"18\" rx=\"9\"/><text class=\"count\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{digits}</text>",
            Px(bx - w / 2.0),
            Px(by - 9.0),
            Px(w),
            Px(bx),
            Px(by + 4.0)
        );
        c.see(bx - w / 2.0, by - 9.0);
        c.see(bx + w / 2.0, by + 9.0);
    }
    c.out.push_str("</g>\n");
}

/// A coordinate as written: one decimal, and never `-0.0`.
pub(super) struct Px(pub(super) f64);

impl std::fmt::Display for Px {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Adding +0.0 turns -0.0 into 0.0.
        let v = (self.0 * 10.0).round() / 10.0 + 0.0;
        write!(f, "{v:.1}")
    }
}

/// `text` cut to `max` characters, with an ellipsis if it was longer.
pub(super) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `text` made safe as XML character data or an attribute value: the five
/// markup characters escaped, and control characters XML does not allow
/// (even as references) replaced by U+FFFD.
pub(super) fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(ch),
            c if c < ' ' || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}
