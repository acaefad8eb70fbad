//! Command-line options of the benchmarks: `--flag value`, `--flag=value`,
//! and the flags cargo itself passes.

use anyhow::{bail, Context, Result};

/// The options after the bench name, one flag at a time.
pub struct Flags {
    args: std::vec::IntoIter<String>,
    flag: String,
    inline: Option<String>,
    usage: &'static str,
}

impl Flags {
    /// The value of the current flag (`--flag=value` or the next argument).
    pub fn value(&mut self) -> Result<String> {
        match self.inline.take() {
            Some(v) => Ok(v),
            None => self
                .args
                .next()
                .with_context(|| format!("{} needs a value\n{}", self.flag, self.usage)),
        }
    }

    /// The value as a number of at least 1 (`_` separators allowed).
    pub fn number(&mut self) -> Result<usize> {
        let n = self.count()?;
        if n == 0 {
            bail!("{} must be at least 1", self.flag);
        }
        Ok(n)
    }

    /// The value as a number, 0 allowed.
    pub fn count(&mut self) -> Result<usize> {
        let v = self.value()?;
        parse_number(&self.flag, &v)
    }
}

/// `v` as a number (`_` separators allowed); errors name `flag`.
pub fn parse_number(flag: &str, v: &str) -> Result<usize> {
    v.trim()
        .replace('_', "")
        .parse()
        .with_context(|| format!("{flag}: {v:?} is not a number"))
}

/// Read the command line, passing each flag to `on_flag` (which answers
/// whether it knew it). `-h`/`--help` prints `usage`; unknown flags are
/// errors; positional arguments (cargo's bench-name filters) are ignored.
/// `Ok(false)`: do not run, either after `--help` or because the bench was
/// started without `--bench` (`cargo test --benches` / `--all-targets` runs
/// bench targets that way: no multi-minute load test from a test run).
pub fn parse(
    bench: &str,
    usage: &'static str,
    mut on_flag: impl FnMut(&str, &mut Flags) -> Result<bool>,
) -> Result<bool> {
    let mut flags = Flags {
        args: std::env::args().skip(1).collect::<Vec<_>>().into_iter(),
        flag: String::new(),
        inline: None,
        usage,
    };
    let mut bench_mode = false;
    while let Some(arg) = flags.args.next() {
        (flags.flag, flags.inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg, None),
        };
        let flag = flags.flag.clone();
        match flag.as_str() {
            "--bench" => bench_mode = true,
            "-h" | "--help" => {
                println!("{usage}");
                return Ok(false);
            }
            f if f.starts_with('-') && !on_flag(f, &mut flags)? => {
                bail!("unknown option {f:?}\n{usage}");
            }
            _ => {}
        }
    }
    if !bench_mode {
        println!("{bench}: not run (use `cargo bench --bench {bench}`)");
        return Ok(false);
    }
    Ok(true)
}

/// Exit with the outcome of a run: 0 when it passed, 1 when a part failed
/// (`Ok(false)`) or the run could not go on (`Err`, printed).
pub fn exit_with(bench: &str, outcome: Result<bool>) {
    match outcome {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("{bench} bench failed: {e:#}");
            std::process::exit(1);
        }
    }
}
