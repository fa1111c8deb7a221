//! Pictures of a fit, drawn with plotters: the loss against the epoch (PNG or SVG) and, for
//! one-feature problems, the data with the fitted line or sigmoid moving over the epochs
//! (GIF), as the teaching notes animate their SGD fit. Text is set in DejaVu Sans, built
//! in, so nothing depends on the machine's fonts.

use std::ops::Range;
use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::descent::LogEntry;
use crate::error::{Error, Result};
use crate::math::sigmoid;
use crate::model::{Model, Objective, Params};

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// The loss plot's size in pixels.
pub const LOSS_PLOT_SIZE: (u32, u32) = (900, 560);
/// The animation's size in pixels.
pub const ANIMATION_SIZE: (u32, u32) = (720, 480);
/// Frames of an animation, at most: longer logs are sampled evenly.
pub const MAX_FRAMES: usize = 200;
/// Data points drawn in an animation, at most (evenly spaced rows).
const MAX_POINTS: usize = 1500;

fn register_font() {
    static FONTS: Once = Once::new();
    FONTS.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .unwrap_or_else(|_| unreachable!("the built-in font parses"));
    });
}

/// What a picture file holds, chosen by its name's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Png,
    Svg,
    Gif,
}

impl Format {
    /// The format of `path` among `allowed`, or an error naming the extensions supported
    /// for `what` (the option that names the file, as `plot`).
    pub fn of(path: &Path, allowed: &[Format], what: &'static str) -> Result<Format> {
        let extension = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        let found = match extension.as_deref() {
            Some("png") => Some(Format::Png),
            Some("svg") => Some(Format::Svg),
            Some("gif") => Some(Format::Gif),
            _ => None,
        };
        match found {
            Some(f) if allowed.contains(&f) => Ok(f),
            _ => {
                let names: Vec<String> = allowed
                    .iter()
                    .map(|f| format!(".{}", f.extension()))
                    .collect();
                Err(Error::option(
                    what,
                    path.display(),
                    format!(
                        "the {what} file's format is chosen by its extension: {}",
                        names.join(" or ")
                    ),
                ))
            }
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Svg => "svg",
            Format::Gif => "gif",
        }
    }
}

/// The formats [`loss_plot`] writes.
pub const PLOT_FORMATS: &[Format] = &[Format::Png, Format::Svg];
/// The formats [`fit_animation`] writes.
pub const ANIMATION_FORMATS: &[Format] = &[Format::Gif];

fn picture_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Picture {
        path: path.into(),
        message: e.to_string(),
    }
}

/// One line of a plot.
pub struct Curve {
    pub label: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
}

/// The colours curves are drawn in, in order (matplotlib's first four).
pub const PALETTE: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

/// Draws the training loss (and the validation loss, when rows were held out) of each
/// logged epoch as a PNG or an SVG, by `path`'s extension, written as
/// [`crate::output::write`] writes files. The loss axis is logarithmic when the losses are
/// positive and span more than a factor of 30.
pub fn loss_plot(path: impl AsRef<Path>, objective: &Objective, log: &[LogEntry]) -> Result<()> {
    let path = path.as_ref();
    let format = Format::of(path, PLOT_FORMATS, "plot")?;
    register_font();
    let mut curves = vec![Curve {
        label: "training".into(),
        color: PALETTE[0],
        points: log
            .iter()
            .map(|e| (e.epoch as f64, e.training.loss))
            .collect(),
    }];
    let validation: Vec<(f64, f64)> = log
        .iter()
        .filter_map(|e| e.validation.map(|v| (e.epoch as f64, v.loss)))
        .collect();
    if !validation.is_empty() {
        curves.push(Curve {
            label: "validation".into(),
            color: PALETTE[1],
            points: validation,
        });
    }
    for c in &mut curves {
        c.points.retain(|p| p.1.is_finite());
    }
    let values = || curves.iter().flat_map(|c| c.points.iter().map(|p| p.1));
    let (lo, hi) = values().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !lo.is_finite() {
        return Err(picture_error(path, "no finite loss to draw"));
    }
    let last_epoch = log.last().map_or(1, |e| e.epoch).max(1) as f64;
    let epochs = 0.0..last_epoch;
    let loss_name = format!("loss ({})", objective.loss());
    let caption = format!("{} regression: loss by epoch", objective.model());
    // A log axis is drawn as log10 of the loss on a linear axis, labelled with the loss:
    // plotters' own log axis leaves the lower decades unlabelled.
    let logarithmic = lo > 0.0 && hi / lo > 30.0;
    let (range, axis) = if logarithmic {
        for c in &mut curves {
            for p in &mut c.points {
                p.1 = p.1.log10();
            }
        }
        (
            (lo / 1.3).log10()..(hi * 1.3).log10(),
            Axis {
                name: format!("{loss_name}, log scale"),
                logarithmic: true,
            },
        )
    } else {
        let pad = ((hi - lo) * 0.08).max(hi.abs() * 1e-3).max(1e-12);
        let bottom = if lo >= 0.0 {
            (lo - pad).max(0.0)
        } else {
            lo - pad
        };
        (
            bottom..hi + pad,
            Axis {
                name: loss_name,
                logarithmic: false,
            },
        )
    };
    // Losses fall: the upper right corner is free.
    let legend = SeriesLabelPosition::UpperRight;
    let chart = Chart {
        caption: &caption,
        x: (epochs, "epoch"),
        y: range,
        axis: &axis,
        curves: &curves,
        legend,
    };
    crate::output::write_with(path, |tmp| {
        let drawn = match format {
            Format::Svg => chart.draw(&SVGBackend::new(tmp, LOSS_PLOT_SIZE).into_drawing_area()),
            _ => chart.draw(&BitMapBackend::new(tmp, LOSS_PLOT_SIZE).into_drawing_area()),
        };
        drawn.map_err(|e| picture_error(path, e))
    })
}

/// The loss axis: its name, and whether positions are log10 of the loss.
struct Axis {
    name: String,
    logarithmic: bool,
}

impl Axis {
    fn label(&self, v: f64) -> String {
        if self.logarithmic {
            short_number(round_significant(10f64.powf(v), 2))
        } else {
            short_number(v)
        }
    }
}

fn round_significant(v: f64, digits: i32) -> f64 {
    if v == 0.0 {
        return 0.0;
    }
    let scale = 10f64.powi(digits - 1 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

/// Draws `curves` (with their labels in a legend) on linear axes as a PNG of
/// [`LOSS_PLOT_SIZE`]: for the teaching notes' function plots.
pub fn curve_plot(
    path: impl AsRef<Path>,
    caption: &str,
    axes: (&str, &str),
    curves: &[Curve],
) -> Result<()> {
    let path = path.as_ref();
    register_font();
    let points = || curves.iter().flat_map(|c| c.points.iter().copied());
    let span = |values: &mut dyn Iterator<Item = f64>| {
        let (lo, hi) = values
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        let pad = ((hi - lo) * 0.05).max(1e-9);
        (lo.is_finite() && hi.is_finite()).then_some((lo - pad)..(hi + pad))
    };
    let (Some(xs), Some(ys)) = (
        span(&mut points().map(|p| p.0)),
        span(&mut points().map(|p| p.1)),
    ) else {
        return Err(picture_error(path, "no finite point to draw"));
    };
    let axis = Axis {
        name: axes.1.to_string(),
        logarithmic: false,
    };
    let legend = SeriesLabelPosition::UpperMiddle;
    let chart = Chart {
        caption,
        x: (xs, axes.0),
        y: ys,
        axis: &axis,
        curves,
        legend,
    };
    crate::output::write_with(path, |tmp| {
        let root = BitMapBackend::new(tmp, LOSS_PLOT_SIZE).into_drawing_area();
        chart.draw(&root).map_err(|e| picture_error(path, e))
    })
}

/// Curves on linear or log-as-linear axes, with a legend: what [`loss_plot`] and
/// [`curve_plot`] draw, on any plotters backend (PNG or SVG).
struct Chart<'a> {
    caption: &'a str,
    /// The x range and the x axis's name.
    x: (Range<f64>, &'a str),
    y: Range<f64>,
    axis: &'a Axis,
    curves: &'a [Curve],
    legend: SeriesLabelPosition,
}

impl Chart<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), Box<dyn std::error::Error>>
    where
        DB::ErrorType: 'static,
    {
        let Chart {
            caption,
            x: (epochs, x_name),
            y: losses,
            axis,
            curves,
            legend,
        } = self;
        let (epochs, losses) = (epochs.clone(), losses.clone());
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .caption(caption, ("sans-serif", 24))
            .margin(18)
            .x_label_area_size(50)
            .y_label_area_size(90)
            .build_cartesian_2d(epochs, losses)?;
        chart
            .configure_mesh()
            .x_desc(*x_name)
            .y_desc(&axis.name)
            .x_label_formatter(&|v| short_number(*v))
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 17))
            .y_labels(12)
            .y_label_formatter(&|v| axis.label(*v))
            .draw()?;
        for curve in *curves {
            let color = curve.color;
            chart
                .draw_series(LineSeries::new(
                    curve.points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(curve.label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 24, y)], color.stroke_width(3))
                });
            if curve.points.len() <= 60 {
                chart.draw_series(
                    curve
                        .points
                        .iter()
                        .map(|&p| Circle::new(p, 3, color.filled())),
                )?;
            }
        }
        chart
            .configure_series_labels()
            .position(legend.clone())
            .label_font(("sans-serif", 16))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    }
}

/// A tick label: plain for ordinary magnitudes, scientific otherwise.
fn short_number(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if (1e-3..1e5).contains(&a) {
        let text = format!("{v:.4}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.1e}")
    }
}

/// How many frames [`fit_animation`] draws for `logged` logged epochs.
pub fn frame_count(logged: usize) -> usize {
    logged.min(MAX_FRAMES)
}

/// Draws a one-feature problem's rows and the fitted line (linear) or sigmoid (logistic)
/// at each of `frames` (epoch, loss, parameters) as an animated GIF, one frame per entry
/// (evenly sampled down to [`MAX_FRAMES`]), written as [`crate::output::write`] writes.
pub fn fit_animation(
    path: impl AsRef<Path>,
    model: Model,
    x: &[f32],
    y: &[f32],
    frames: &[(u64, f64, Params)],
) -> Result<()> {
    let path = path.as_ref();
    Format::of(path, ANIMATION_FORMATS, "animate")?;
    register_font();
    if model == Model::Softmax {
        return Err(picture_error(
            path,
            "the animation draws linear and logistic models (a line or a sigmoid)",
        ));
    }
    if frames.is_empty() || x.is_empty() {
        return Err(picture_error(path, "nothing to animate"));
    }
    if let Some(p) = frames.iter().find(|f| f.2.features() != 1) {
        return Err(picture_error(
            path,
            format!(
                "the animation draws one-feature problems; this one has {} features",
                p.2.features()
            ),
        ));
    }
    let stride = x.len().div_ceil(MAX_POINTS);
    let points: Vec<(f64, f64)> = x
        .iter()
        .zip(y)
        .step_by(stride)
        .map(|(&a, &b)| (f64::from(a), f64::from(b)))
        .collect();
    let span = |values: &mut dyn Iterator<Item = f64>| {
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        let pad = ((hi - lo) * 0.06).max(1e-3);
        (lo - pad)..(hi + pad)
    };
    let xs = span(&mut points.iter().map(|p| p.0));
    let ys = match model {
        Model::Logistic => -0.08..1.08,
        _ => span(&mut points.iter().map(|p| p.1)),
    };
    let count = frame_count(frames.len());
    let chosen = (0..count).map(|i| {
        if count == 1 {
            0
        } else {
            i * (frames.len() - 1) / (count - 1)
        }
    });
    crate::output::write_with(path, |tmp| {
        let root = BitMapBackend::gif(tmp, ANIMATION_SIZE, 120)
            .map_err(|e| picture_error(path, e))?
            .into_drawing_area();
        for index in chosen {
            let (epoch, loss, params) = &frames[index];
            draw_frame(
                &root,
                model,
                &points,
                xs.clone(),
                ys.clone(),
                *epoch,
                *loss,
                params,
            )
            .map_err(|e| picture_error(path, e))?;
        }
        Ok(())
    })
}

#[allow(clippy::too_many_arguments)]
fn draw_frame(
    root: &DrawingArea<BitMapBackend<'_>, Shift>,
    model: Model,
    points: &[(f64, f64)],
    xs: Range<f64>,
    ys: Range<f64>,
    epoch: u64,
    loss: f64,
    params: &Params,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let (w, b) = (params.weights()[0], params.bias()[0]);
    let sign = if b < 0.0 { '−' } else { '+' };
    let line = format!("{w:.3}·x {sign} {:.3}", b.abs());
    let (caption, y_desc) = match model {
        Model::Logistic => (
            format!("epoch {epoch}: ŷ = σ({line}), loss {loss:.4}"),
            "y, and ŷ = P(y = 1)",
        ),
        _ => (
            format!("epoch {epoch}: ŷ = {line}, loss {loss:.4}"),
            "y, and ŷ",
        ),
    };
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(xs.clone(), ys.clone())?;
    chart
        .configure_mesh()
        .x_desc("x")
        .y_desc(y_desc)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    chart.draw_series(
        points
            .iter()
            .map(|&p| Circle::new(p, 2, RGBColor(31, 119, 180).mix(0.45).filled())),
    )?;
    let steps = 240;
    let curve = (0..=steps).map(|i| {
        let x = xs.start + (xs.end - xs.start) * i as f64 / steps as f64;
        let z = w * x + b;
        let y = match model {
            Model::Logistic => sigmoid(z),
            _ => z,
        };
        (x, y.clamp(ys.start, ys.end))
    });
    chart.draw_series(LineSeries::new(
        curve,
        RGBColor(214, 39, 40).stroke_width(3),
    ))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_stay_short() {
        assert_eq!(short_number(0.0), "0");
        assert_eq!(short_number(0.25), "0.25");
        assert_eq!(short_number(12.0), "12");
        assert_eq!(short_number(0.000_012_3), "1.2e-5");
        assert_eq!(short_number(2.5e7), "2.5e7");
        assert_eq!(round_significant(0.015_849, 2), 0.016);
        assert_eq!(round_significant(251.2, 2), 250.0);
    }

    #[test]
    fn long_logs_are_sampled_down() {
        assert_eq!(frame_count(11), 11);
        assert_eq!(frame_count(10_001), MAX_FRAMES);
    }
}
