//! Constants of an ONNX graph as the QDQ lowering reads them: initializers and `Constant`
//! nodes with their integer or float elements, and int8 weights with their scales.

use tract_onnx::pb;

/// A constant of the model, with its integer or float elements.
#[derive(Clone, Debug)]
pub(crate) struct Constant {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// ONNX element type (1 float, 2 uint8, 3 int8, 6 int32, 7 int64).
    pub data_type: i32,
    /// Integer elements (integer types).
    pub ints: Vec<i64>,
    /// Float elements (type 1).
    pub floats: Vec<f32>,
}

impl Constant {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Decodes an ONNX tensor.
    pub fn from_proto(t: &pb::TensorProto) -> std::result::Result<Constant, String> {
        if t.dims.iter().any(|&d| d < 0) {
            return Err(format!("constant `{}` has a negative dimension", t.name));
        }
        let shape: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
        let n: usize = shape.iter().product();
        let raw = &t.raw_data;
        let (mut ints, mut floats) = (Vec::new(), Vec::new());
        let short = || format!("constant `{}` holds fewer elements than its shape", t.name);
        match t.data_type {
            1 => {
                floats = if raw.is_empty() {
                    t.float_data.clone()
                } else {
                    raw.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect()
                }
            }
            2 | 3 => {
                ints = if raw.is_empty() {
                    t.int32_data.iter().map(|&v| i64::from(v)).collect()
                } else if t.data_type == 2 {
                    raw.iter().map(|&b| i64::from(b)).collect()
                } else {
                    raw.iter().map(|&b| i64::from(b as i8)).collect()
                }
            }
            6 => {
                ints = if raw.is_empty() {
                    t.int32_data.iter().map(|&v| i64::from(v)).collect()
                } else {
                    raw.chunks_exact(4)
                        .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                        .collect()
                }
            }
            7 => {
                ints = if raw.is_empty() {
                    t.int64_data.clone()
                } else {
                    raw.chunks_exact(8)
                        .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                        .collect()
                }
            }
            other => {
                return Err(format!(
                    "constant `{}` has ONNX element type {other}, not float, int8, uint8, int32 or int64",
                    t.name
                ))
            }
        }
        if ints.len().max(floats.len()) < n {
            return Err(short());
        }
        ints.truncate(n);
        floats.truncate(n);
        Ok(Constant {
            shape,
            data_type: t.data_type,
            ints,
            floats,
        })
    }

    /// The elements as f32.
    pub fn as_f32(&self) -> Vec<f32> {
        if self.data_type == 1 {
            self.floats.clone()
        } else {
            self.ints.iter().map(|&v| v as f32).collect()
        }
    }
}

/// A weight behind a `DequantizeLinear`: integers, and per-channel (or one) scale and zero.
#[derive(Clone, Debug)]
pub(crate) struct QuantWeight {
    /// The integers.
    pub values: Constant,
    /// One scale, or one per channel along `axis`.
    pub scales: Vec<f32>,
    /// One zero point, or one per channel.
    pub zeros: Vec<i64>,
    /// The channel axis of per-channel scales.
    pub axis: usize,
}

impl QuantWeight {
    /// Scale of channel `c` along `axis` (per-tensor weights have one).
    pub fn scale(&self, c: usize) -> f32 {
        if self.scales.len() == 1 {
            self.scales[0]
        } else {
            self.scales[c]
        }
    }

    /// Zero point of channel `c`.
    pub fn zero(&self, c: usize) -> i64 {
        if self.zeros.len() == 1 {
            self.zeros[0]
        } else {
            self.zeros[c]
        }
    }

    /// The real values.
    pub fn reals(&self) -> Vec<f64> {
        let shape = &self.values.shape;
        let inner: usize = shape.get(self.axis + 1..).map_or(1, |s| s.iter().product());
        let ch = shape.get(self.axis).copied().unwrap_or(1);
        let v = if self.values.data_type == 1 {
            return self.values.floats.iter().map(|&f| f64::from(f)).collect();
        } else {
            &self.values.ints
        };
        v.iter()
            .enumerate()
            .map(|(i, &q)| {
                let c = if ch == 0 { 0 } else { (i / inner.max(1)) % ch };
                (q - self.zero(c)) as f64 * f64::from(self.scale(c))
            })
            .collect()
    }
}
