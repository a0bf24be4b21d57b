//! Risk checks before routing, on the salted PAN hash only: a blocked card (lost 41, stolen 43,
//! restricted 62), the daily amount limit per card (61), and the same card at two terminals
//! too far apart for the time between them (59, "impossible travel": implied speed above
//! `travel_speed_kmh_max` between terminals whose positions are known).

use std::collections::HashMap;

use super::clock::Moment;
use super::switch::Switch;
use super::{PaymentError, codes, store};

/// How far back the travel check looks, ms.
pub const TRAVEL_WINDOW_MS: i64 = 60 * 60 * 1_000;

/// Terminal positions for the travel check: terminal id → (latitude, longitude) in
/// micro-degrees (WGS 84).
#[derive(Debug, Clone, Default)]
pub struct TerminalMap {
    /// Positions by terminal id.
    pub positions: HashMap<String, (i64, i64)>,
    /// Refuse when the implied speed between two uses exceeds this, km/h.
    pub travel_speed_kmh_max: u32,
}

/// Great-circle distance in km (haversine, mean Earth radius 6371.0088 km).
#[must_use]
pub fn distance_km(a: (i64, i64), b: (i64, i64)) -> f64 {
    // Micro-degrees to radians; the values are bounded by ±180e6, exact in f64.
    let rad = |v: i64| (v as f64) * 1e-6_f64.to_radians();
    let (lat1, lon1, lat2, lon2) = (rad(a.0), rad(a.1), rad(b.0), rad(b.1));
    let h = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * 6_371.008_8 * h.sqrt().asin()
}

impl Switch {
    /// The refusal code of the first failing check, or `None`.
    pub(super) async fn risk(
        &self,
        pan_ref: &str,
        amount_fen: i64,
        now: &Moment,
    ) -> Result<Option<String>, PaymentError> {
        let db = self.inner.ledger.store();
        if let Some(code) = store::card_block(db, pan_ref).await? {
            return Ok(Some(code));
        }
        let since_midnight_ms = i64::from(now.hour * 3_600 + now.minute * 60 + now.second) * 1_000
            + now.unix_ms.rem_euclid(1_000);
        let day_start_ms = now.unix_ms - since_midnight_ms;
        let window_start = day_start_ms.min(now.unix_ms - TRAVEL_WINDOW_MS);
        let activity = store::card_activity(db, pan_ref, window_start).await?;
        let spent: i64 = activity
            .iter()
            .filter(|(_, _, at)| *at >= day_start_ms)
            .map(|(fen, _, _)| *fen)
            .sum();
        if spent.saturating_add(amount_fen) > self.inner.options.daily_limit_fen {
            return Ok(Some(codes::EXCEEDS_LIMIT.to_owned()));
        }
        Ok(None)
    }

    /// The travel check for `terminal_id` (separate so the terminal is known).
    pub(super) async fn travel_risk(
        &self,
        pan_ref: &str,
        terminal_id: &str,
        now: &Moment,
    ) -> Result<Option<String>, PaymentError> {
        let map = &self.inner.options.terminals;
        let Some(here) = map.positions.get(terminal_id) else {
            return Ok(None);
        };
        let db = self.inner.ledger.store();
        for (_, other, at) in
            store::card_activity(db, pan_ref, now.unix_ms - TRAVEL_WINDOW_MS).await?
        {
            let Some(there) = map.positions.get(&other) else {
                continue;
            };
            let km = distance_km(*here, *there);
            // At least one minute apart in the computation, so two uses in the same second at
            // distant places count as a very high speed, not a division by zero.
            let hours = ((now.unix_ms - at).max(60_000) as f64) / 3_600_000.0;
            if km / hours > f64::from(map.travel_speed_kmh_max) {
                return Ok(Some(codes::SUSPECTED_FRAUD.to_owned()));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Beijing (39.9042 N, 116.4074 E) to Shanghai (31.2304 N, 121.4737 E): about 1067 km
    /// great-circle (haversine with R = 6371.0088 km, computed with Python's math module).
    #[test]
    fn beijing_shanghai() {
        let km = distance_km((39_904_200, 116_407_400), (31_230_400, 121_473_700));
        assert!((km - 1067.0).abs() < 2.0, "{km}");
    }
}
