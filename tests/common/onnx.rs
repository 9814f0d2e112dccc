//! A small ONNX model builder for tests that need many variants of one op.

use tract_onnx::pb;

/// An attribute value.
pub enum Attr {
    /// `int`
    Int(i64),
    /// `ints`
    Ints(Vec<i64>),
    /// `float`
    Float(f32),
    /// `string`
    Str(&'static str),
}

/// Builds a single-input, single-output ONNX model (opset 14, float32).
pub struct OnnxBuilder {
    graph: pb::GraphProto,
    counter: usize,
}

fn value_info(name: &str, shape: Option<&[usize]>) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension, Dimension};
    let shape = shape.map(|s| pb::TensorShapeProto {
        dim: s
            .iter()
            .map(|&d| Dimension {
                value: Some(dimension::Value::DimValue(d as i64)),
                ..Default::default()
            })
            .collect(),
    });
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape,
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl OnnxBuilder {
    /// A graph whose input is `x` of `shape`.
    pub fn new(shape: &[usize]) -> Self {
        let graph = pb::GraphProto {
            name: "case".into(),
            input: vec![value_info("x", Some(shape))],
            ..Default::default()
        };
        OnnxBuilder { graph, counter: 0 }
    }

    fn fresh(&mut self, base: &str) -> String {
        self.counter += 1;
        format!("{base}_{}", self.counter)
    }

    /// A float initializer; returns its name.
    pub fn f32s(&mut self, shape: &[usize], data: Vec<f32>) -> String {
        assert_eq!(shape.iter().product::<usize>(), data.len());
        let name = self.fresh("w");
        self.graph.initializer.push(pb::TensorProto {
            name: name.clone(),
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: 1,
            float_data: data,
            ..Default::default()
        });
        name
    }

    /// An int8 initializer; returns its name.
    pub fn i8s(&mut self, shape: &[usize], data: Vec<i8>) -> String {
        self.ints(shape, 3, data.into_iter().map(i32::from).collect())
    }

    /// An int32 initializer; returns its name.
    pub fn i32s(&mut self, shape: &[usize], data: Vec<i32>) -> String {
        self.ints(shape, 6, data)
    }

    fn ints(&mut self, shape: &[usize], data_type: i32, data: Vec<i32>) -> String {
        assert_eq!(shape.iter().product::<usize>(), data.len());
        let name = self.fresh("q");
        self.graph.initializer.push(pb::TensorProto {
            name: name.clone(),
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type,
            int32_data: data,
            ..Default::default()
        });
        name
    }

    /// An int64 initializer; returns its name.
    pub fn i64s(&mut self, data: Vec<i64>) -> String {
        let name = self.fresh("i");
        self.graph.initializer.push(pb::TensorProto {
            name: name.clone(),
            dims: vec![data.len() as i64],
            data_type: 7,
            int64_data: data,
            ..Default::default()
        });
        name
    }

    /// An int64 initializer of the given shape; returns its name.
    pub fn i64s_shaped(&mut self, shape: &[usize], data: Vec<i64>) -> String {
        let name = self.fresh("i");
        self.graph.initializer.push(pb::TensorProto {
            name: name.clone(),
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: 7,
            int64_data: data,
            ..Default::default()
        });
        name
    }

    /// An int64 scalar initializer (rank 0); returns its name.
    pub fn i64_scalar(&mut self, v: i64) -> String {
        let name = self.fresh("i");
        self.graph.initializer.push(pb::TensorProto {
            name: name.clone(),
            dims: vec![],
            data_type: 7,
            int64_data: vec![v],
            ..Default::default()
        });
        name
    }

    /// Adds a node; returns the name of its (first) output.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        let out = self.fresh(&op.to_lowercase());
        let attribute = attrs
            .into_iter()
            .map(|(name, a)| {
                let mut p = pb::AttributeProto {
                    name: name.into(),
                    ..Default::default()
                };
                use pb::attribute_proto::AttributeType as T;
                match a {
                    Attr::Int(i) => (p.i, p.r#type) = (i, T::Int as i32),
                    Attr::Ints(v) => (p.ints, p.r#type) = (v, T::Ints as i32),
                    Attr::Float(f) => (p.f, p.r#type) = (f, T::Float as i32),
                    Attr::Str(s) => (p.s, p.r#type) = (s.as_bytes().to_vec(), T::String as i32),
                }
                p
            })
            .collect();
        let name = self.fresh(op);
        self.graph.node.push(pb::NodeProto {
            name,
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            attribute,
            ..Default::default()
        });
        out
    }

    /// As [`OnnxBuilder::node`], for an op of `n` outputs; returns their names.
    pub fn node_n(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
        n: usize,
    ) -> Vec<String> {
        let first = self.node(op, inputs, attrs);
        let mut outs = vec![first];
        for _ in 1..n {
            let o = self.fresh(&op.to_lowercase());
            self.graph
                .node
                .last_mut()
                .expect("the node")
                .output
                .push(o.clone());
            outs.push(o);
        }
        outs
    }

    /// Declares `name` the graph output and encodes the model.
    pub fn finish(mut self, output: &str) -> Vec<u8> {
        use prost::Message;
        self.graph.output.push(value_info(output, None));
        let model = pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: 14,
            }],
            producer_name: "microarena-tests".into(),
            graph: Some(self.graph),
            ..Default::default()
        };
        model.encode_to_vec()
    }
}

/// A deterministic pseudo-random source (xorshift64*), so every failure is reproducible.
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Next raw value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// Uniform in `[lo, hi)`.
    pub fn f32(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
    }

    /// `n` values uniform in `[lo, hi)`.
    pub fn f32s(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.f32(lo, hi)).collect()
    }

    /// True with probability 1/2.
    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }

    /// One of the items.
    pub fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.range(0, items.len() - 1)].clone()
    }
}
