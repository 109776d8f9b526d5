//! `DeviceChoice`: where a kernel runs (`cpu`, `gpu` or `auto`), the one spelling shared by the
//! miner (`hash::select`), the gradient reducer (`train::aggregate`) and the CLI flags. Says
//! what the user asked for; each subsystem decides what `auto` means for its kernel.

use std::fmt;
use std::str::FromStr;

/// Where work runs, as `--backend` or a config key names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeviceChoice {
    /// The CPU.
    Cpu,
    /// The GPU, or an error when no adapter opens.
    Gpu,
    /// A hardware GPU if one opens (a software adapter such as lavapipe is slower than the
    /// CPU paths), else the CPU.
    #[default]
    Auto,
}

/// A name that is not `cpu`, `gpu` or `auto`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend {0:?}: expected cpu, gpu or auto")]
pub struct UnknownDevice(pub String);

impl FromStr for DeviceChoice {
    type Err = UnknownDevice;
    fn from_str(text: &str) -> Result<DeviceChoice, UnknownDevice> {
        match text.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(DeviceChoice::Cpu),
            "gpu" => Ok(DeviceChoice::Gpu),
            "auto" => Ok(DeviceChoice::Auto),
            _ => Err(UnknownDevice(text.to_string())),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Gpu => "gpu",
            DeviceChoice::Auto => "auto",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_case_blind_and_round_trip() {
        assert_eq!("CPU".parse::<DeviceChoice>(), Ok(DeviceChoice::Cpu));
        assert_eq!(" gpu ".parse::<DeviceChoice>(), Ok(DeviceChoice::Gpu));
        for choice in [DeviceChoice::Cpu, DeviceChoice::Gpu, DeviceChoice::Auto] {
            assert_eq!(choice.to_string().parse::<DeviceChoice>(), Ok(choice));
        }
        let error = "tpu".parse::<DeviceChoice>().unwrap_err();
        assert!(error.to_string().contains("cpu, gpu or auto"), "{error}");
    }
}
