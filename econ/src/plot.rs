//! SVG line charts (plotters, SVG backend only: text is written as SVG `<text>`, so no system
//! fonts are needed and the files are byte-for-byte reproducible).

use plotters::coord::combinators::IntoLogRange;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use crate::EconError;

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Line,
    Dashed,
    Points,
}

/// Where the legend goes (away from the data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Legend {
    UpperRight,
    MiddleRight,
    LowerLeft,
    LowerRight,
}

impl Legend {
    fn position(self) -> SeriesLabelPosition {
        match self {
            Legend::UpperRight => SeriesLabelPosition::UpperRight,
            Legend::MiddleRight => SeriesLabelPosition::MiddleRight,
            Legend::LowerLeft => SeriesLabelPosition::LowerLeft,
            Legend::LowerRight => SeriesLabelPosition::LowerRight,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub style: Style,
}

impl Series {
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>, style: Style) -> Self {
        Series {
            label: label.into(),
            points,
            style,
        }
    }
}

/// One chart. On a log axis, points at or below zero are left out (say so in the caption).
#[derive(Debug, Clone)]
pub struct Plot {
    pub file: String,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_log: bool,
    pub y_log: bool,
    pub series: Vec<Series>,
    pub legend: Legend,
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
    RGBColor(127, 127, 127),
];

impl Plot {
    /// Renders the chart as an SVG document.
    pub fn svg(&self) -> Result<String, EconError> {
        let (xs, ys) = self.bounds();
        match (self.x_log, self.y_log) {
            (true, true) => self.render(xs.log_scale(), ys.log_scale()),
            (true, false) => self.render(xs.log_scale(), ys),
            (false, true) => self.render(xs, ys.log_scale()),
            (false, false) => self.render(xs, ys),
        }
    }

    fn visible(&self, p: &(f64, f64)) -> bool {
        p.0.is_finite()
            && p.1.is_finite()
            && (!self.x_log || p.0 > 0.0)
            && (!self.y_log || p.1 > 0.0)
    }

    /// Data bounds with a margin (a decade-fraction on log axes, 5% on linear ones).
    fn bounds(&self) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
        let pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|p| self.visible(p))
            .collect();
        let span = |v: Vec<f64>, log: bool| {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let (lo, hi) = if lo.is_finite() {
                (lo, hi)
            } else {
                (1.0, 10.0)
            };
            if log {
                (lo / 1.5)..(hi * 1.5)
            } else {
                let pad = ((hi - lo) * 0.05).max(1e-9);
                (lo - pad)..(hi + pad)
            }
        };
        (
            span(pts.iter().map(|p| p.0).collect(), self.x_log),
            span(pts.iter().map(|p| p.1).collect(), self.y_log),
        )
    }

    fn render<XR, YR>(&self, xr: XR, yr: YR) -> Result<String, EconError>
    where
        XR: AsRangedCoord<Value = f64>,
        YR: AsRangedCoord<Value = f64>,
        XR::CoordDescType: ValueFormatter<f64>,
        YR::CoordDescType: ValueFormatter<f64>,
    {
        let err = |e: &dyn std::fmt::Display| EconError::Plot {
            name: self.file.clone(),
            reason: e.to_string(),
        };
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, (900, 560)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| err(&e))?;
            let mut chart = ChartBuilder::on(&root)
                .caption(&self.title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(48)
                .y_label_area_size(80)
                .build_cartesian_2d(xr, yr)
                .map_err(|e| err(&e))?;
            chart
                .configure_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .label_style(("sans-serif", 14))
                .axis_desc_style(("sans-serif", 15))
                .draw()
                .map_err(|e| err(&e))?;
            for (i, s) in self.series.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                let pts: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|p| self.visible(p))
                    .collect();
                let ann = match s.style {
                    Style::Line => chart.draw_series(LineSeries::new(pts, color.stroke_width(2))),
                    Style::Dashed => {
                        chart.draw_series(DashedLineSeries::new(pts, 8, 5, color.stroke_width(2)))
                    }
                    Style::Points => chart
                        .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled()))),
                }
                .map_err(|e| err(&e))?;
                ann.label(&s.label).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 13))
                .position(self.legend.position())
                .draw()
                .map_err(|e| err(&e))?;
            root.present().map_err(|e| err(&e))?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_log_log_chart_with_text() {
        let p = Plot {
            file: "t.svg".into(),
            title: "title".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            x_log: true,
            y_log: true,
            legend: Legend::UpperRight,
            series: vec![
                Series::new(
                    "a",
                    vec![(1.0, 1.0), (10.0, 100.0), (0.0, 5.0)],
                    Style::Line,
                ),
                Series::new("b", vec![(2.0, 3.0)], Style::Points),
            ],
        };
        let svg = p.svg().unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(
            svg.contains("\ntitle\n") && svg.contains("\na\n"),
            "text is plain SVG <text>"
        );
        assert_eq!(svg, p.svg().unwrap(), "deterministic");
    }
}
