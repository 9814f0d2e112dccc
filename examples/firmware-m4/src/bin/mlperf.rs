//! The MLPerf-Tiny-shaped networks on the Cortex-M4F (QEMU `mps2-an386`): ResNet-8 (image
//! classification), DS-CNN-S (keyword spotting), MobileNetV1-0.25 at 96×96 (visual wake
//! words) and the FC autoencoder (anomaly detection), f32 and int8 (QDQ). Each runs on its
//! committed input, is compared with onnxruntime's output and re-checked by its
//! `self_test()`; the cost of one inference is printed as instructions and instructions per
//! multiply-accumulate (MACs counted by the compiler: every tap of every convolution and
//! matrix product). A separate binary from the main example: the weights of all eight
//! models do not fit the board's 4 MiB of code memory next to the others.
//!
//! ```sh
//! cd examples/firmware-m4 && cargo run --release --bin mlperf
//! ```

#![no_std]
#![no_main]

use cortex_m_rt::entry;

#[path = "../common.rs"]
#[macro_use]
mod common;

mod resnet8 {
    microarena::include_model!("../../tests/models/resnet8.onnx", self_test = true);
}
/// DS-CNN f32 streamed whole by default, its depthwise windows split (the rows read again
/// kept apart): under half the arena of the unstreamed plan (asserted below).
mod dscnn {
    microarena::include_model!("../../tests/models/dscnn.onnx", self_test = true);
}
/// DS-CNN f32 held whole (`streaming = false`): what streaming is measured against.
mod dscnn_unstreamed {
    microarena::include_model!(
        "../../tests/models/dscnn.onnx",
        self_test = true,
        streaming = false
    );
}
const _: () = assert!(2 * dscnn::ARENA_BYTES <= dscnn_unstreamed::ARENA_BYTES);
mod mobilenet_v1 {
    microarena::include_model!("../../tests/models/mobilenet_v1.onnx", self_test = true);
}
mod fc_autoencoder {
    microarena::include_model!("../../tests/models/fc_autoencoder.onnx", self_test = true);
}
mod resnet8_int8 {
    microarena::include_model!("../../tests/models/int8/resnet8_qdq.onnx", self_test = true);
}
/// DS-CNN streamed whole by default, from its input to its average pooling (the pooling
/// sums each row as it comes), in bands of six rows: under half the arena of the unstreamed
/// plan (asserted below), within 8% more instructions.
mod dscnn_int8 {
    microarena::include_model!("../../tests/models/int8/dscnn_qdq.onnx", self_test = true);
}
/// DS-CNN held whole (`streaming = false`): what streaming is measured against.
mod dscnn_int8_unstreamed {
    microarena::include_model!(
        "../../tests/models/int8/dscnn_qdq.onnx",
        self_test = true,
        streaming = false
    );
}
const _: () = assert!(2 * dscnn_int8::ARENA_BYTES <= dscnn_int8_unstreamed::ARENA_BYTES);
mod mobilenet_v1_int8 {
    microarena::include_model!(
        "../../tests/models/int8/mobilenet_v1_qdq.onnx",
        self_test = true
    );
}
mod fc_autoencoder_int8 {
    microarena::include_model!(
        "../../tests/models/int8/fc_autoencoder_qdq.onnx",
        self_test = true
    );
}

#[entry]
fn main() -> ! {
    common::start_counter();
    let mut ok = true;
    ok &= check_int8!(resnet8_int8, "resnet8", "resnet8_qdq");
    ok &= check_int8!(dscnn_int8, "dscnn", "dscnn_qdq");
    ok &= check!(
        dscnn_int8_unstreamed,
        "dscnn (streaming = false)",
        "dscnn.input.bin",
        "int8/dscnn_qdq.output.bin",
        "int8",
        |_| 1.01 * dscnn_int8_unstreamed::OUTPUT_SCALE
    );
    ok &= check_int8!(mobilenet_v1_int8, "mobilenet_v1", "mobilenet_v1_qdq");
    ok &= check_int8!(fc_autoencoder_int8, "fc_autoencoder", "fc_autoencoder_qdq");
    ok &= check_f32!(resnet8, "resnet8");
    ok &= check_f32!(dscnn, "dscnn");
    ok &= check!(
        dscnn_unstreamed,
        "dscnn (streaming = false)",
        "dscnn.input.bin",
        "dscnn.output.bin",
        "f32",
        |w| 1e-5 + 1e-4 * w.abs()
    );
    ok &= check_f32!(mobilenet_v1, "mobilenet_v1");
    ok &= check_f32!(fc_autoencoder, "fc_autoencoder");
    common::exit(ok)
}
