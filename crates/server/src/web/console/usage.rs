//! Usage: tokens issued per key per hour as a bar chart drawn on the server (SVG inside the page: no script, no
//! chart library), a table of the same numbers for screen readers, and the advice to cache tokens when a key asks
//! for far more than their lifetime needs.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::console::{CacheAdvice, cache_advice};
use keyward_core::duration::format_seconds;
use serde::Deserialize;

use super::{Console, Frame, when};
use crate::app::App;
use crate::web::pages::render;
use crate::web::session::unavailable;

/// The chart's drawing area, in SVG user units (it scales to the page's width).
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 180.0;
/// Room for the axis labels.
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 8.0;

/// One hour's bar.
pub(crate) struct Bar {
    pub x: String,
    pub y: String,
    pub w: String,
    pub h: String,
    /// `2026-11-22 14:00 UTC: 12 tokens`, the bar's tooltip.
    pub label: String,
}

/// A label on an axis.
pub(crate) struct Tick {
    pub at: String,
    pub text: String,
}

/// An hourly bar chart of one key's tokens.
#[derive(Template)]
#[template(path = "console/chart.html")]
pub(crate) struct Chart {
    pub title: String,
    pub bars: Vec<Bar>,
    pub y_ticks: Vec<Tick>,
    pub x_ticks: Vec<Tick>,
    pub total: i64,
    /// The hours with tokens, for the table: (hour, tokens).
    pub rows: Vec<(String, i64)>,
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub base: f64,
}

impl Chart {
    /// The chart of `series` (hour start, tokens), oldest first.
    pub(crate) fn new(name: &str, series: &[(i64, i64)]) -> Self {
        let max = series.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
        let top = nice_ceiling(max);
        let plot_w = WIDTH - LEFT;
        let plot_h = HEIGHT - BOTTOM - TOP;
        let step = plot_w / series.len().max(1) as f64;
        let base = HEIGHT - BOTTOM;
        let bars = series
            .iter()
            .enumerate()
            .filter(|(_, (_, n))| *n > 0)
            .map(|(i, (hour, n))| {
                // A bar of one token is still visible.
                let h = (*n as f64 / top as f64 * plot_h).max(1.0);
                Bar {
                    x: fmt(LEFT + i as f64 * step + step * 0.1),
                    y: fmt(base - h),
                    w: fmt((step * 0.8).max(0.5)),
                    h: fmt(h),
                    label: format!(
                        "{}: {n} token{}",
                        when(*hour),
                        if *n == 1 { "" } else { "s" }
                    ),
                }
            })
            .collect();
        let y_ticks = [0, top / 2, top]
            .into_iter()
            .map(|v| Tick {
                at: fmt(base - v as f64 / top as f64 * plot_h),
                text: v.to_string(),
            })
            .collect();
        // A label at each day's first hour (UTC), at most eight of them.
        let days: Vec<usize> = series
            .iter()
            .enumerate()
            .filter(|(_, (hour, _))| hour.rem_euclid(86_400) == 0)
            .map(|(i, _)| i)
            .collect();
        let every = days.len().div_ceil(8).max(1);
        // A label needs about 34 units; one too close to the right edge would be cut off.
        let x_ticks = days
            .iter()
            .step_by(every)
            .filter(|&&i| LEFT + i as f64 * step <= WIDTH - 34.0)
            .map(|&i| Tick {
                at: fmt(LEFT + i as f64 * step),
                text: when(series[i].0)[5..10].to_owned(),
            })
            .collect();
        let total = series.iter().map(|(_, n)| n).sum();
        let hours = series.len();
        Chart {
            title: format!(
                "Tokens per hour for {name} over the last {}: {total} in all, at most {} in one hour",
                span_text(hours),
                series.iter().map(|(_, n)| *n).max().unwrap_or(0)
            ),
            bars,
            y_ticks,
            x_ticks,
            total,
            rows: series
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(h, n)| (when(*h), *n))
                .collect(),
            width: WIDTH,
            height: HEIGHT,
            left: LEFT,
            base,
        }
    }

    /// The chart as HTML, for a page that shows several.
    pub(crate) fn html(&self) -> String {
        self.render().unwrap_or_default()
    }
}

/// `24 hours`, `7 days`.
fn span_text(hours: usize) -> String {
    if hours <= 24 {
        format!("{hours} hours")
    } else {
        format!("{} days", hours / 24)
    }
}

/// SVG numbers with one decimal.
fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

/// The smallest of 1, 2, 5 × 10ⁿ at or above `v`, so the axis reads in round numbers.
fn nice_ceiling(v: i64) -> i64 {
    let mut m = 1;
    loop {
        for f in [1, 2, 5] {
            if f * m >= v {
                return f * m;
            }
        }
        m *= 10;
    }
}

/// The advice, in words: "this key requested 4,000 tokens in the last 24 hours; each lives 24h: cache it".
pub(crate) fn advice_text(name: &str, a: CacheAdvice) -> String {
    format!(
        "{name} requested {} tokens in the last 24 hours, and each lives {}: one token per {} would do. \
         Cache the token and reuse it until it expires instead of asking for one per call.",
        thousands(a.tokens),
        format_seconds(a.ttl),
        format_seconds(a.ttl),
    )
}

/// `4000` as `4,000`.
fn thousands(n: i64) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A key's chart on the usage page.
pub(crate) struct KeyUsage {
    /// The key's id as a path segment.
    pub path: String,
    pub name: String,
    pub total: i64,
    pub chart: String,
    pub advice: Option<String>,
}

#[derive(Template)]
#[template(path = "console/usage.html")]
struct UsagePage {
    frame: Frame,
    days: i64,
    keys: Vec<KeyUsage>,
}

#[derive(Deserialize)]
pub(crate) struct Span {
    days: Option<String>,
}

/// `GET /console/usage?days=1|7|30`: a chart per key.
pub(crate) async fn page(State(app): State<App>, c: Console, Query(span): Query<Span>) -> Response {
    // Anything but the offered spans (a hand-edited address) is a week.
    let days = match span.days.as_deref() {
        Some("1") => 1,
        Some("30") => 30,
        _ => 7,
    };
    let keys = match app.api_keys.keys_of(&c.account.account_id).await {
        Ok(k) => k,
        Err(e) => return unavailable(e),
    };
    let resources = app.memory.registry.resources();
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        let series = match app
            .admin
            .usage_series(&k.client.client_id, days as usize * 24)
            .await
        {
            Ok(s) => s,
            Err(e) => return unavailable(e),
        };
        let last_day: i64 = series.iter().rev().take(24).map(|(_, n)| n).sum();
        let ttl = resources
            .get(&k.environment)
            .map_or(0, |r| r.access_token_ttl);
        let chart = Chart::new(&k.client.name, &series);
        out.push(KeyUsage {
            total: chart.total,
            chart: chart.html(),
            advice: cache_advice(last_day, ttl).map(|a| advice_text(&k.client.name, a)),
            path: keyward_core::form::encode_component(&k.client.client_id),
            name: k.client.name,
        });
    }
    render(
        StatusCode::OK,
        &UsagePage {
            frame: c.frame(),
            days,
            keys: out,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_read_in_round_numbers() {
        assert_eq!(nice_ceiling(1), 1);
        assert_eq!(nice_ceiling(3), 5);
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(4_001), 5_000);
        assert_eq!(thousands(4_000), "4,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn a_chart_draws_a_bar_per_hour_with_tokens() {
        let series: Vec<(i64, i64)> = (0..48)
            .map(|i| (i * 3_600, if i == 30 { 12 } else { 0 }))
            .collect();
        let c = Chart::new("shop", &series);
        assert_eq!(c.bars.len(), 1);
        assert_eq!(c.total, 12);
        assert!(c.bars[0].label.ends_with("12 tokens"));
        // Two midnights in two days: two date labels.
        assert_eq!(c.x_ticks.len(), 2);
        let html = c.html();
        assert!(html.contains("<svg") && html.contains("role=\"img\""));
    }
}
