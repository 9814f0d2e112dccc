//! The int8 convolution kernels alone on the Cortex-M4F (QEMU `mps2-an386`), on the layer
//! shapes of the MLPerf-Tiny-shaped networks: instructions per multiply-accumulate of each
//! kernel, and a check that the Cortex-M4 paths (inline assembly) compute what the reference
//! kernel computes, bit for bit.
//!
//! ```sh
//! cd examples/firmware-m4 && cargo run --release --bin kernels
//! ```

#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use microarena::kernels::conv::{self, Conv2d, ConvI8};
use microarena::kernels::quant::Requant;
use microarena::kernels::{Activation, Window2d};

#[path = "../common.rs"]
#[allow(dead_code)]
mod common;

/// A deterministic byte stream.
struct Lcg(u32);

impl Lcg {
    fn next(&mut self) -> i8 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (self.0 >> 24) as i8
    }
}

static mut INPUT: [i8; 16_384] = [0; 16_384];
static mut WEIGHTS: [i8; 9_216] = [0; 9_216];
static mut PACKED: [i16; 18_432] = [0; 18_432];
static mut SCRATCH: [i16; 4_096] = [0; 4_096];
static mut WANT: [i8; 16_384] = [0; 16_384];
static mut GOT: [i8; 16_384] = [0; 16_384];
static mut REQUANT: [Requant; 64] = [Requant {
    multiplier: 0,
    shift: 0,
}; 64];
static mut BIAS: [i32; 64] = [0; 64];

/// One layer: `(name, in_c, out_c, in_h, in_w, k_h, k_w, stride, pad, groups)`.
type Layer = (
    &'static str,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
);

const LAYERS: [Layer; 5] = [
    ("resnet8 3x3 16->16 32x32", 16, 16, 32, 32, 3, 3, 1, 1, 1),
    ("resnet8 3x3 s2 16->32", 16, 32, 32, 32, 3, 3, 2, 1, 1),
    ("dscnn 10x4 s2 1->64", 1, 64, 49, 10, 10, 4, 2, 4, 1),
    ("dscnn 1x1 64->64 25x5", 64, 64, 25, 5, 1, 1, 1, 0, 1),
    ("dscnn dw 3x3 64 25x5", 64, 64, 25, 5, 3, 3, 1, 1, 64),
];

#[entry]
fn main() -> ! {
    common::start_counter();
    let mut ok = true;
    // SAFETY: the only references to the statics are taken here, once, on one thread.
    let (input, weights, packed, scratch, want, got, requant, bias) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(INPUT),
            &mut *core::ptr::addr_of_mut!(WEIGHTS),
            &mut *core::ptr::addr_of_mut!(PACKED),
            &mut *core::ptr::addr_of_mut!(SCRATCH),
            &mut *core::ptr::addr_of_mut!(WANT),
            &mut *core::ptr::addr_of_mut!(GOT),
            &mut *core::ptr::addr_of_mut!(REQUANT),
            &mut *core::ptr::addr_of_mut!(BIAS),
        )
    };
    let mut r = Lcg(12345);
    for (name, in_c, out_c, in_h, in_w, k_h, k_w, stride, pad, groups) in LAYERS {
        let geom = Conv2d {
            batch: 1,
            in_c,
            out_c,
            groups,
            window: Window2d::uniform(in_h, in_w, k_h, k_w, stride, 1, pad),
            act: Activation::Identity,
        };
        let (out_h, out_w) = (geom.window.out_h, geom.window.out_w);
        let p = ConvI8 {
            geom,
            input_zero: -5,
            output_zero: 3,
            lo: -128,
            hi: 127,
        };
        let (n_in, n_w, n_out) = (
            in_c * in_h * in_w,
            out_c * in_c / groups * k_h * k_w,
            out_c * out_h * out_w,
        );
        input[..n_in].iter_mut().for_each(|x| *x = r.next());
        weights[..n_w].iter_mut().for_each(|x| *x = r.next());
        for c in 0..out_c {
            requant[c] = Requant::from_f32(0.002 + 0.0001 * c as f32);
            bias[c] = c as i32 * 37 - 500;
        }
        let macs = (n_out * in_c / groups * k_h * k_w) as u64;
        let t = common::ticks();
        conv::conv2d_i8(
            &p,
            &input[..n_in],
            &weights[..n_w],
            Some(&bias[..out_c]),
            &requant[..out_c],
            &mut want[..n_out],
        );
        let reference = (common::ticks() - t) * 40;
        let t;
        if groups == 1 {
            let len = conv::tiled_weights_len(&geom);
            for (d, s) in packed[..len]
                .iter_mut()
                .zip(conv::pack_tiled_weights(&geom, &weights[..n_w]))
            {
                *d = s;
            }
            let s = &mut scratch[..conv::tiled_scratch_len(&geom)];
            let scales: [f32; 64] = core::array::from_fn(|c| requant[c].scale());
            t = common::ticks();
            conv::conv2d_i8_tiled(
                &p,
                &input[..n_in],
                &packed[..len],
                Some(&bias[..out_c]),
                &scales[..out_c],
                s,
                &mut got[..n_out],
            );
        } else {
            let len = conv::depthwise_weights_len(&geom);
            for (d, s) in packed[..len]
                .iter_mut()
                .zip(conv::pack_depthwise_weights(&geom, &weights[..n_w]))
            {
                *d = s;
            }
            let s = &mut scratch[..conv::depthwise_scratch_len(&geom) / 2];
            let scales: [f32; 64] = core::array::from_fn(|c| requant[c].scale());
            t = common::ticks();
            conv::conv2d_i8_depthwise(
                &p,
                &input[..n_in],
                &packed[..len],
                Some(&bias[..out_c]),
                &scales[..out_c],
                s,
                &mut got[..n_out],
            );
        }
        let fast = (common::ticks() - t) * 40;
        let same = want[..n_out] == got[..n_out];
        ok &= same;
        let per = |i: u64| (i * 100 + macs / 2) / macs;
        let (a, b) = (per(reference), per(fast));
        hprintln!(
            "{}: {} MACs, reference {}.{:02}, new {}.{:02} instructions per MAC: {}",
            name,
            macs,
            a / 100,
            a % 100,
            b / 100,
            b % 100,
            if same { "same output" } else { "MISMATCH" }
        );
    }
    common::exit(ok)
}
