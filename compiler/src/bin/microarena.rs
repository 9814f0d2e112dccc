//! `microarena`: the command-line face of the compiler.
//!
//! ```text
//! microarena plan MODEL.onnx [--input-shape [NAME=]1,3,32,32 ..] [--const-input NAME=V ..] [--carry OUT=IN ..] [--json] [--planning-only] [--effort PCT] [--budget-ms N] [--alignment N] [--no-streaming] [--copy-input] [--stream-cost PCT]
//! microarena report MODEL.onnx -o report.svg [--budget BYTES] [--input-shape ..] [--effort PCT] [--budget-ms N] [--alignment N] [--no-streaming] [--copy-input] [--stream-cost PCT]
//! ```
//!
//! `plan` prints the memory plan of a model exactly as `include_model!` builds it (the same
//! import, lowering and checks: a model `plan` accepts, the macro builds): the arena tensors,
//! the schedule, and the ONNX file order, tract's order and ours side by side. With
//! `--planning-only` it also plans models with ops microarena has no kernel for (planning
//! needs only shapes), which the macro refuses. `report` draws the same comparison as an SVG:
//! live bytes per step of the three orders, and the arena map (see
//! `microarena_compiler::report`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use microarena_compiler::{compile, plan_model, report, Options};

const USAGE: &str = "usage: microarena plan MODEL.onnx [--input-shape [NAME=]1,3,32,32 ..] [--const-input NAME=V ..] [--carry OUT=IN ..] [--json] [--planning-only] [--effort PCT] [--budget-ms N] [--alignment N] [--no-streaming] [--copy-input] [--stream-cost PCT]
       microarena report MODEL.onnx -o report.svg [--budget BYTES] [--input-shape ..] [--effort PCT] [--budget-ms N] [--alignment N] [--no-streaming] [--copy-input] [--stream-cost PCT]

  --input-shape D,D,..  pin the input shape of models with symbolic dimensions
  --input-shape NAME=D,D,..
                        pin one input of several by name (once per input)
  --const-input NAME=V  bake input NAME in as the constant V (a scalar: a sample rate,
                        a flag); `If` and shape arithmetic on it fold away
  --carry OUT=IN        output OUT is the next call's input IN (a recurrent state kept
                        by the model; once per pair); by default paired by name (`hN`
                        with `h`); `--carry none` carries nothing
  --json                (plan) print one JSON object instead of tables
  --planning-only       also plan ops microarena has no kernel for (kept by their shapes);
                        such a plan cannot be built: the macro refuses the model
  --no-streaming        never run a region band by band (streamed stages)
  --copy-input          copy the graph input into the arena even where a stage could
                        read it from the caller's array
  --stream-cost PCT     estimated extra time streamed stages may cost, percent (default 8)
  -o, --output FILE     (report) where to write the SVG
  --budget BYTES        (report) draw this SRAM budget as a line
  --effort PCT          planning work, percent of the default (default 100; the plan is
                        the same on every machine, under any load)
  --budget-ms N         also stop planning after N ms (off by default; the plan then
                        depends on the machine's speed and load)
  --alignment N         byte alignment of arena offsets (default 16)";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Command {
    Plan,
    Report,
}

struct Args {
    command: Command,
    model: PathBuf,
    options: Options,
    json: bool,
    planning_only: bool,
    output: Option<PathBuf>,
    sram_budget: Option<usize>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let command = match args.next().as_deref() {
        Some("plan") => Command::Plan,
        Some("report") => Command::Report,
        Some("-h" | "--help") | None => return Err(String::new()),
        Some(other) => return Err(format!("unknown command `{other}`")),
    };
    let mut model = None;
    let mut options = Options::default();
    let mut json = false;
    let mut planning_only = false;
    let mut output = None;
    let mut sram_budget = None;
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--json" if command == Command::Plan => json = true,
            "--planning-only" => planning_only = true,
            "--no-streaming" => options.streaming = false,
            "--copy-input" => options.copy_input = true,
            "-o" | "--output" if command == Command::Report => {
                output = Some(PathBuf::from(value("--output")?));
            }
            "--budget" if command == Command::Report => {
                let v = value("--budget")?;
                sram_budget = Some(
                    v.parse::<usize>()
                        .map_err(|_| format!("--budget `{v}`: expected bytes"))?,
                );
            }
            "--input-shape" => {
                let v = value("--input-shape")?;
                // `NAME=D,D,..` pins one input of several; `D,D,..` the only one.
                let (name, dims) = match v.split_once('=') {
                    Some((n, d)) => (Some(n.trim()), d),
                    None => (None, v.as_str()),
                };
                let shape = dims
                    .split(',')
                    .map(|d| d.trim().parse::<usize>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| {
                        format!(
                            "--input-shape `{v}`: expected numbers separated by commas, \
                             optionally after `NAME=`"
                        )
                    })?;
                match name {
                    Some(n) if options.input_shapes.iter().any(|(m, _)| m == n) => {
                        return Err(format!("--input-shape: `{n}` is pinned twice"));
                    }
                    Some(n) => options.input_shapes.push((n.to_string(), shape)),
                    None if options.input_shape.is_some() => {
                        return Err("--input-shape without a name is for a model's only \
                                    input; name each of several: `--input-shape NAME=D,D,..`"
                            .into());
                    }
                    None => options.input_shape = Some(shape),
                }
            }
            "--const-input" => {
                let v = value("--const-input")?;
                let (n, x) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--const-input `{v}`: expected NAME=VALUE"))?;
                let x = x
                    .parse::<microarena_compiler::import::Scalar>()
                    .map_err(|e| format!("--const-input `{v}`: {e}"))?;
                if options.const_inputs.iter().any(|(m, _)| m == n.trim()) {
                    return Err(format!("--const-input: `{}` is given twice", n.trim()));
                }
                options.const_inputs.push((n.trim().to_string(), x));
            }
            "--carry" => {
                let v = value("--carry")?;
                let pairs = options.carry.get_or_insert_with(Vec::new);
                if v.trim() != "none" {
                    let (o, i) = v
                        .split_once('=')
                        .ok_or_else(|| format!("--carry `{v}`: expected OUTPUT=INPUT or `none`"))?;
                    pairs.push((o.trim().to_string(), i.trim().to_string()));
                }
            }
            "--budget-ms" => {
                let v = value("--budget-ms")?;
                let ms = v
                    .parse::<u64>()
                    .map_err(|_| format!("--budget-ms `{v}`: expected milliseconds"))?;
                options.time_limit = Some(Duration::from_millis(ms));
            }
            "--effort" => {
                let v = value("--effort")?;
                let pct = v
                    .parse::<u64>()
                    .map_err(|_| format!("--effort `{v}`: expected a percentage"))?;
                options.work = (microarena_compiler::DEFAULT_WORK / 100).saturating_mul(pct);
            }
            "--stream-cost" => {
                let v = value("--stream-cost")?;
                options.stream_cost_percent = v
                    .parse::<u32>()
                    .map_err(|_| format!("--stream-cost `{v}`: expected a percentage"))?;
            }
            "--alignment" => {
                let v = value("--alignment")?;
                options.alignment = v
                    .parse::<usize>()
                    .map_err(|_| format!("--alignment `{v}`: expected bytes"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`")),
            path => {
                if model.replace(PathBuf::from(path)).is_some() {
                    return Err("give one model".into());
                }
            }
        }
    }
    let model = model.ok_or("give the model's path")?;
    if command == Command::Report && output.is_none() {
        return Err("report needs `-o FILE.svg`".into());
    }
    Ok(Args {
        command,
        model,
        options,
        json,
        planning_only,
        output,
        sram_budget,
    })
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let start = Instant::now();
    let planned = if args.planning_only {
        plan_model(&args.model, &args.options)
    } else {
        compile(&args.model, &args.options)
    };
    let compiled = match planned {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let total_ms = start.elapsed().as_secs_f64() * 1e3;
    if let (Command::Report, Some(out)) = (args.command, &args.output) {
        let title = args.model.file_name().map_or_else(
            || args.model.display().to_string(),
            |f| f.to_string_lossy().into_owned(),
        );
        let svg = report::svg(&compiled, &title, args.sram_budget);
        if let Err(e) = std::fs::write(out, svg) {
            eprintln!("error: cannot write {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
        let [file, tract, ours] = report::timelines(&compiled).map(|t| t.arena_bytes);
        println!(
            "{}: arena {} B (file order {} B, tract order {} B); wrote {}",
            args.model.display(),
            report::thousands(ours),
            report::thousands(file),
            report::thousands(tract),
            out.display()
        );
        return ExitCode::SUCCESS;
    }
    if args.json {
        println!("{}", report::json(&compiled, total_ms));
    } else {
        print!("{}", report::text(&compiled, &args.model, total_ms));
    }
    ExitCode::SUCCESS
}
