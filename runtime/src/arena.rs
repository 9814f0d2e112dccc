//! The activation arena and the flash-resident weight blobs the generated code works on.

/// Alignment, in bytes, of every arena and weight blob (and the default alignment of offsets
/// the planner hands out). 16 keeps any element type aligned and suits SIMD loads.
pub const ALIGN: usize = 16;

/// A span of `len` `f32` elements starting `offset` bytes into an [`Arena`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Byte offset from the start of the arena; a multiple of 4.
    pub offset: usize,
    /// Number of `f32` elements.
    pub len: usize,
}

impl Region {
    /// A region of `len` elements at byte `offset`.
    pub const fn new(offset: usize, len: usize) -> Self {
        Region { offset, len }
    }

    const fn end(&self) -> usize {
        self.offset + self.len * 4
    }

    const fn overlaps(&self, other: &Region) -> bool {
        self.len != 0 && other.len != 0 && self.offset < other.end() && other.offset < self.end()
    }
}

/// The activation memory of one model: `N` bytes, aligned to [`ALIGN`].
///
/// The generated `Model` owns one; the planner decides at compile time which tensor lives
/// at which offset, and the schedule borrows disjoint [`Region`]s of it for each kernel call.
#[repr(C, align(16))]
pub struct Arena<const N: usize> {
    bytes: [u8; N],
}

impl<const N: usize> Default for Arena<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Arena<N> {
    /// A zeroed arena (usable in `static` and `const` contexts).
    pub const fn new() -> Self {
        Arena { bytes: [0; N] }
    }

    fn check(&self, r: &Region) {
        assert!(
            r.offset.is_multiple_of(4) && r.end() <= N,
            "region outside the arena"
        );
    }

    /// Read-only view of a region.
    pub fn f32(&self, r: Region) -> &[f32] {
        self.check(&r);
        // SAFETY: the region lies inside `bytes` (checked above); the arena is 16-aligned and the
        // offset a multiple of 4, so the pointer is aligned for f32, and every bit pattern is a
        // valid f32. The shared borrow of `self` covers the returned lifetime.
        unsafe {
            core::slice::from_raw_parts(self.bytes.as_ptr().add(r.offset) as *const f32, r.len)
        }
    }

    /// Mutable view of a region.
    pub fn f32_mut(&mut self, r: Region) -> &mut [f32] {
        self.check(&r);
        // SAFETY: as in `f32`; the exclusive borrow of `self` makes this the only live view.
        unsafe {
            core::slice::from_raw_parts_mut(
                self.bytes.as_mut_ptr().add(r.offset) as *mut f32,
                r.len,
            )
        }
    }

    /// Shared views of `inputs` and an exclusive view of `output`, all borrowed at once.
    ///
    /// Inputs may overlap each other (they are only read); the output must overlap none of
    /// them. The planner guarantees both; the asserts make a planner bug a panic rather than
    /// undefined behaviour, and fold away when the regions are constants.
    pub fn views<const NI: usize>(
        &mut self,
        inputs: [Region; NI],
        output: Region,
    ) -> ([&[f32]; NI], &mut [f32]) {
        self.check(&output);
        for r in &inputs {
            self.check(r);
            assert!(
                !r.overlaps(&output),
                "kernel output overlaps one of its inputs"
            );
        }
        let base = self.bytes.as_mut_ptr();
        // SAFETY: each region is in bounds and 4-aligned (checked); the output region overlaps no
        // input region (checked), so the one `&mut` slice aliases none of the shared slices, and
        // all of them are derived from the exclusive borrow of `self`, which outlives them.
        unsafe {
            let ins = inputs
                .map(|r| core::slice::from_raw_parts(base.add(r.offset) as *const f32, r.len));
            let out =
                core::slice::from_raw_parts_mut(base.add(output.offset) as *mut f32, output.len);
            (ins, out)
        }
    }
}

/// `N` bytes of constant data (weights, biases) stored little-endian, aligned to [`ALIGN`].
///
/// The generated code emits one `static` per weight tensor, so weights stay in flash.
#[repr(C, align(16))]
pub struct Weights<const N: usize>(pub [u8; N]);

impl<const N: usize> Weights<N> {
    /// The blob as `f32` elements.
    pub fn f32(&self) -> &[f32] {
        assert!(
            N.is_multiple_of(4),
            "f32 weights must be a whole number of elements"
        );
        // SAFETY: the blob is 16-aligned, `N / 4` f32s cover exactly its bytes, every bit pattern
        // is a valid f32, and the target is little-endian (checked at the crate root), matching
        // the byte order the compiler wrote.
        unsafe { core::slice::from_raw_parts(self.0.as_ptr() as *const f32, N / 4) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_are_disjoint_and_in_place() {
        let mut a = Arena::<64>::new();
        a.f32_mut(Region::new(0, 4))
            .copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
        let ([x, y], out) = a.views([Region::new(0, 4), Region::new(0, 2)], Region::new(32, 4));
        out[0] = x[3] + y[1];
        assert_eq!(a.f32(Region::new(32, 1)), &[6.0]);
    }

    #[test]
    #[should_panic(expected = "overlaps")]
    fn overlapping_output_is_refused() {
        let mut a = Arena::<64>::new();
        let _ = a.views([Region::new(0, 4)], Region::new(12, 4));
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn out_of_bounds_is_refused() {
        let a = Arena::<16>::new();
        let _ = a.f32(Region::new(8, 4));
    }

    #[test]
    fn weights_read_little_endian() {
        static W: Weights<8> = Weights([0, 0, 128, 63, 0, 0, 0, 64]);
        assert_eq!(W.f32(), &[1.0, 2.0]);
    }
}
