//! Enables the Cortex-M DSP-extension kernels (`SXTB16`, `SMLAxy`) on targets that have it:
//! Armv7E-M (Cortex-M4/M7) and Armv8-M Mainline with DSP (Cortex-M33/M55). Stable Rust has
//! no `target_feature = "dsp"` cfg, so the target name decides.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(microarena_dsp)");
    println!("cargo::rerun-if-env-changed=TARGET");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumbv7em") || target.starts_with("thumbv8m.main") {
        println!("cargo::rustc-cfg=microarena_dsp");
    }
}
