//! [`RecordingSwitch`]: the rollback flag for metadata recording.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Environment variable read by [`RecordingSwitch::from_env`]: `on` or `off`.
pub const RECORDING_ENV: &str = "ORDERMETA_RECORDING";

/// Whether placement records metadata (and so whether cancel-by-id is possible).
///
/// Two levels, as the original design's rollback plan asks:
/// - the Cargo feature `recording` (default on) decides whether recording is compiled in at
///   all; without it the switch is always off and [`set`](Self::set) has no effect;
/// - at run time the switch is read from [`RECORDING_ENV`] at start and can be flipped from
///   any thread without a restart. Clones share one flag.
///
/// With the switch off, placement behaves exactly as without ordermeta and cancel-by-id
/// answers with manual-cancellation guidance.
#[derive(Clone, Debug)]
pub struct RecordingSwitch {
    on: Arc<AtomicBool>,
}

/// [`RECORDING_ENV`] held something other than `on` or `off`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{RECORDING_ENV} must be \"on\" or \"off\", got {value:?}")]
pub struct InvalidRecordingSetting {
    /// What the variable held.
    pub value: String,
}

impl Default for RecordingSwitch {
    /// On (when compiled in).
    fn default() -> Self {
        Self::new(true)
    }
}

impl RecordingSwitch {
    /// A switch in the given position (always off without the `recording` feature).
    pub fn new(on: bool) -> Self {
        RecordingSwitch {
            on: Arc::new(AtomicBool::new(on && Self::compiled_in())),
        }
    }

    /// Reads [`RECORDING_ENV`]: unset means on; `on`/`off` (any case, also `1`/`0`,
    /// `true`/`false`); anything else is an error rather than a silent guess.
    pub fn from_env() -> Result<Self, InvalidRecordingSetting> {
        match std::env::var(RECORDING_ENV) {
            Err(_) => Ok(Self::new(true)),
            Ok(v) => Self::parse(&v).map(Self::new),
        }
    }

    /// Parses a setting: `on`/`off`, `true`/`false`, `1`/`0`, any case.
    pub fn parse(value: &str) -> Result<bool, InvalidRecordingSetting> {
        match value.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "1" => Ok(true),
            "off" | "false" | "0" => Ok(false),
            _ => Err(InvalidRecordingSetting {
                value: value.to_owned(),
            }),
        }
    }

    /// Whether recording is compiled in (Cargo feature `recording`).
    pub const fn compiled_in() -> bool {
        cfg!(feature = "recording")
    }

    /// Whether placement records metadata now.
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    /// Flips the switch for every clone; returns the position it had. Without the
    /// `recording` feature it stays off.
    pub fn set(&self, on: bool) -> bool {
        self.on.swap(on && Self::compiled_in(), Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_settings() {
        assert_eq!(RecordingSwitch::parse("ON"), Ok(true));
        assert_eq!(RecordingSwitch::parse(" off "), Ok(false));
        assert_eq!(RecordingSwitch::parse("0"), Ok(false));
        let err = RecordingSwitch::parse("maybe").expect_err("rejects");
        assert!(err.to_string().contains("maybe"));
    }

    #[test]
    fn clones_share_the_flag_across_threads() {
        let s = RecordingSwitch::new(true);
        let c = s.clone();
        std::thread::spawn(move || c.set(false))
            .join()
            .expect("thread");
        assert!(!s.is_on());
        s.set(true);
        assert_eq!(s.is_on(), RecordingSwitch::compiled_in());
    }

    /// The rollback build: without the feature nothing turns recording on.
    #[cfg(not(feature = "recording"))]
    #[test]
    fn compiled_out_is_always_off() {
        assert!(!RecordingSwitch::compiled_in());
        assert!(!RecordingSwitch::new(true).is_on());
        let s = RecordingSwitch::new(false);
        s.set(true);
        assert!(!s.is_on());
    }
}
