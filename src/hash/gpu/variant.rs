//! The spelling choices of the generated sha256d kernel (`KernelVariant`): which is fastest
//! depends on the GPU's compiler, so the checked-in shader uses the defaults and the others are
//! generated at run time for `scripts/gpu-check.sh` to compare. Names only; `codegen` builds.

/// How the kernel spells SHA-256's majority function; which is faster depends on the GPU's
/// compiler, so `scripts/gpu-check.sh` measures both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MajForm {
    /// `(a & b) | (c & (a | b))`: one tree over three inputs, which NVIDIA's compiler can turn
    /// into a single 3-input logic instruction (LOP3). The checked-in shader uses it.
    #[default]
    Select,
    /// `b ^ ((a ^ b) & (b ^ c))` with `b ^ c` being the previous round's `a ^ b`: one operation
    /// fewer per round where there is no 3-input logic instruction, but `a ^ b` stays live.
    SharedXor,
}

impl std::str::FromStr for MajForm {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "select" => Ok(MajForm::Select),
            "shared-xor" => Ok(MajForm::SharedXor),
            other => Err(format!("unknown Maj form {other:?} (select, shared-xor)")),
        }
    }
}

impl std::fmt::Display for MajForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MajForm::Select => "select",
            MajForm::SharedXor => "shared-xor",
        })
    }
}

/// Where the kernel reads the job values: a `let` per value before the nonce loop (the
/// checked-in shader, the form measured on the H200 in the design note), or the uniform at each
/// use, which keeps 31 values out of the loop's live set if the compiler does not already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobLoads {
    /// `let jK = job.jK;` before the loop.
    #[default]
    Locals,
    /// `job.jK` at each use inside the loop.
    Inline,
}

impl std::str::FromStr for JobLoads {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "locals" => Ok(JobLoads::Locals),
            "inline" => Ok(JobLoads::Inline),
            other => Err(format!(
                "unknown job-value loading {other:?} (locals, inline)"
            )),
        }
    }
}

impl std::fmt::Display for JobLoads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JobLoads::Locals => "locals",
            JobLoads::Inline => "inline",
        })
    }
}

/// The spelling choices of the generated kernel. The default is the checked-in shader; the
/// others are generated at run time so a GPU machine can compare them (`gpu_hashrate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelVariant {
    /// How `Maj` is spelled.
    pub maj: MajForm,
    /// Where the job values are read.
    pub job_loads: JobLoads,
}

impl std::fmt::Display for KernelVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.maj, self.job_loads)
    }
}
