//! The activation arena and the flash-resident weight blobs the generated code works on.

/// Alignment, in bytes, of every arena and weight blob (and the default alignment of offsets
/// the planner hands out). 16 keeps any element type aligned and suits SIMD loads.
pub const ALIGN: usize = 16;

/// Element types a [`Region`] can hold: `f32`, `i8`, `i16` (kernel scratch) and `i32` (running
/// sums) (sealed).
pub trait Element: Copy + sealed::Sealed {
    /// Bytes per element.
    const SIZE: usize;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for i8 {}
    impl Sealed for i16 {}
    impl Sealed for i32 {}
}

impl Element for f32 {
    const SIZE: usize = 4;
}

impl Element for i8 {
    const SIZE: usize = 1;
}

impl Element for i16 {
    const SIZE: usize = 2;
}

impl Element for i32 {
    const SIZE: usize = 4;
}

/// A span of `len` elements of `elem_size` bytes starting `offset` bytes into an [`Arena`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Byte offset from the start of the arena; a multiple of the element size.
    pub offset: usize,
    /// Number of elements.
    pub len: usize,
    /// Bytes per element: 4 for `f32` and `i32`, 1 for `i8`, 2 for `i16`.
    pub elem_size: usize,
}

impl Region {
    /// A region of `len` `f32` elements at byte `offset`.
    pub const fn new(offset: usize, len: usize) -> Self {
        Region {
            offset,
            len,
            elem_size: 4,
        }
    }

    /// A region of `len` `i8` elements at byte `offset`.
    pub const fn i8(offset: usize, len: usize) -> Self {
        Region {
            offset,
            len,
            elem_size: 1,
        }
    }

    /// A region of `len` `i16` elements at byte `offset` (a kernel's scratch).
    pub const fn i16(offset: usize, len: usize) -> Self {
        Region {
            offset,
            len,
            elem_size: 2,
        }
    }

    /// A region of `len` `i32` elements at byte `offset` (running sums of a streamed stage).
    pub const fn i32(offset: usize, len: usize) -> Self {
        Region {
            offset,
            len,
            elem_size: 4,
        }
    }

    const fn end(&self) -> usize {
        self.offset + self.len * self.elem_size
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

    fn check<T: Element>(&self, r: &Region) {
        assert!(r.elem_size == T::SIZE, "region of another element type");
        assert!(
            r.offset.is_multiple_of(T::SIZE) && r.end() <= N,
            "region outside the arena"
        );
    }

    fn slice<T: Element>(&self, r: Region) -> &[T] {
        self.check::<T>(&r);
        // SAFETY: the region lies inside `bytes` (checked above); the arena is 16-aligned and the
        // offset a multiple of the element size, so the pointer is aligned for `T`, and every bit
        // pattern is a valid `T` (f32 or i8). The shared borrow of `self` covers the lifetime.
        unsafe { core::slice::from_raw_parts(self.bytes.as_ptr().add(r.offset) as *const T, r.len) }
    }

    fn slice_mut<T: Element>(&mut self, r: Region) -> &mut [T] {
        self.check::<T>(&r);
        // SAFETY: as in `slice`; the exclusive borrow of `self` makes this the only live view.
        unsafe {
            core::slice::from_raw_parts_mut(self.bytes.as_mut_ptr().add(r.offset) as *mut T, r.len)
        }
    }

    /// Read-only `f32` view of a region.
    pub fn f32(&self, r: Region) -> &[f32] {
        self.slice(r)
    }

    /// Mutable `f32` view of a region.
    pub fn f32_mut(&mut self, r: Region) -> &mut [f32] {
        self.slice_mut(r)
    }

    /// Read-only `i8` view of a region.
    pub fn i8(&self, r: Region) -> &[i8] {
        self.slice(r)
    }

    /// Mutable `i8` view of a region.
    pub fn i8_mut(&mut self, r: Region) -> &mut [i8] {
        self.slice_mut(r)
    }

    /// All bytes of the arena, for the row copies of streamed stages
    /// ([`crate::kernels::stream::copy_rows`]), which move bytes whatever the element type.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
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
        self.typed_views(inputs, output)
    }

    /// [`Arena::views`] for an int8 kernel.
    pub fn views_i8<const NI: usize>(
        &mut self,
        inputs: [Region; NI],
        output: Region,
    ) -> ([&[i8]; NI], &mut [i8]) {
        self.typed_views(inputs, output)
    }

    /// [`Arena::views`] for a quantisation (`f32` in, `i8` out).
    pub fn views_f32_i8<const NI: usize>(
        &mut self,
        inputs: [Region; NI],
        output: Region,
    ) -> ([&[f32]; NI], &mut [i8]) {
        self.typed_views(inputs, output)
    }

    /// [`Arena::views`] for a dequantisation (`i8` in, `f32` out).
    pub fn views_i8_f32<const NI: usize>(
        &mut self,
        inputs: [Region; NI],
        output: Region,
    ) -> ([&[i8]; NI], &mut [f32]) {
        self.typed_views(inputs, output)
    }

    /// [`Arena::views`] for int8 rows summed into `i32` (a streamed stage's running sums).
    pub fn views_i8_i32<const NI: usize>(
        &mut self,
        inputs: [Region; NI],
        output: Region,
    ) -> ([&[i8]; NI], &mut [i32]) {
        self.typed_views(inputs, output)
    }

    /// [`Arena::views`] for `i32` sums turned into int8 (a streamed stage's averages).
    pub fn views_i32_i8<const NI: usize>(
        &mut self,
        inputs: [Region; NI],
        output: Region,
    ) -> ([&[i32]; NI], &mut [i8]) {
        self.typed_views(inputs, output)
    }

    /// [`Arena::views_i8`] with a scratch region of `i16` the kernel may use as it likes; it
    /// overlaps neither the inputs nor the output.
    pub fn views_i8_scratch<const NI: usize>(
        &mut self,
        inputs: [Region; NI],
        output: Region,
        scratch: Region,
    ) -> ([&[i8]; NI], &mut [i8], &mut [i16]) {
        self.typed_views_scratch(inputs, output, scratch)
    }

    /// [`Arena::views`] with a scratch region of `f32` the kernel may use as it likes (a
    /// streamed f32 depthwise window's joined channel plane); it overlaps neither the inputs
    /// nor the output.
    pub fn views_f32_scratch<const NI: usize>(
        &mut self,
        inputs: [Region; NI],
        output: Region,
        scratch: Region,
    ) -> ([&[f32]; NI], &mut [f32], &mut [f32]) {
        self.typed_views_scratch(inputs, output, scratch)
    }

    fn typed_views_scratch<I: Element, O: Element, S: Element, const NI: usize>(
        &mut self,
        inputs: [Region; NI],
        output: Region,
        scratch: Region,
    ) -> ([&[I]; NI], &mut [O], &mut [S]) {
        self.check::<S>(&scratch);
        assert!(
            !scratch.overlaps(&output) && inputs.iter().all(|r| !r.overlaps(&scratch)),
            "kernel scratch overlaps an operand"
        );
        self.check::<O>(&output);
        for r in &inputs {
            self.check::<I>(r);
            assert!(
                !r.overlaps(&output),
                "kernel output overlaps one of its inputs"
            );
        }
        let base = self.bytes.as_mut_ptr();
        // SAFETY: every region is in bounds and aligned for its element type (checked); the
        // output and the scratch overlap neither each other nor any input (checked), so the two `&mut`
        // slices alias nothing else; all derive from the one exclusive borrow of `self`, which
        // outlives them.
        unsafe {
            let ins =
                inputs.map(|r| core::slice::from_raw_parts(base.add(r.offset) as *const I, r.len));
            let out =
                core::slice::from_raw_parts_mut(base.add(output.offset) as *mut O, output.len);
            let s =
                core::slice::from_raw_parts_mut(base.add(scratch.offset) as *mut S, scratch.len);
            (ins, out, s)
        }
    }

    fn typed_views<I: Element, O: Element, const NI: usize>(
        &mut self,
        inputs: [Region; NI],
        output: Region,
    ) -> ([&[I]; NI], &mut [O]) {
        self.check::<O>(&output);
        for r in &inputs {
            self.check::<I>(r);
            assert!(
                !r.overlaps(&output),
                "kernel output overlaps one of its inputs"
            );
        }
        let base = self.bytes.as_mut_ptr();
        // SAFETY: each region is in bounds and aligned for its element type (checked); the
        // output region overlaps no input region (checked), so the one `&mut` slice aliases none
        // of the shared slices, and all of them are derived from the exclusive borrow of `self`,
        // which outlives them.
        unsafe {
            let ins =
                inputs.map(|r| core::slice::from_raw_parts(base.add(r.offset) as *const I, r.len));
            let out =
                core::slice::from_raw_parts_mut(base.add(output.offset) as *mut O, output.len);
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

    /// The blob as `i8` elements (int8 weights).
    pub fn i8(&self) -> &[i8] {
        // SAFETY: `N` bytes reinterpreted as `N` i8s: same size and alignment, any bit pattern.
        unsafe { core::slice::from_raw_parts(self.0.as_ptr() as *const i8, N) }
    }

    /// The blob as `i16` elements (int8 weights widened for the DSP kernels), little-endian.
    pub fn i16(&self) -> &[i16] {
        assert!(
            N.is_multiple_of(2),
            "i16 weights must be a whole number of elements"
        );
        // SAFETY: the blob is 16-aligned, `N / 2` i16s cover exactly its bytes, any bit pattern
        // is a valid i16, and the target is little-endian (checked at the crate root).
        unsafe { core::slice::from_raw_parts(self.0.as_ptr() as *const i16, N / 2) }
    }

    /// The blob as `i32` elements (int8 models' biases), little-endian.
    pub fn i32(&self) -> &[i32] {
        assert!(
            N.is_multiple_of(4),
            "i32 weights must be a whole number of elements"
        );
        // SAFETY: the blob is 16-aligned, `N / 4` i32s cover exactly its bytes, any bit pattern
        // is a valid i32, and the target is little-endian (checked at the crate root).
        unsafe { core::slice::from_raw_parts(self.0.as_ptr() as *const i32, N / 4) }
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
    fn typed_views_of_one_arena() {
        let mut a = Arena::<64>::new();
        a.f32_mut(Region::new(0, 2)).copy_from_slice(&[1.5, -2.0]);
        {
            let ([x], out) = a.views_f32_i8([Region::new(0, 2)], Region::i8(8, 2));
            out[0] = x[0] as i8;
            out[1] = x[1] as i8;
        }
        assert_eq!(a.i8(Region::i8(8, 2)), &[1, -2]);
        let ([x], out) = a.views_i8_f32([Region::i8(8, 2)], Region::new(12, 2));
        out[0] = f32::from(x[1]);
        assert_eq!(a.f32(Region::new(12, 1)), &[-2.0]);
    }

    #[test]
    #[should_panic(expected = "overlaps")]
    fn overlap_is_measured_in_bytes() {
        let mut a = Arena::<64>::new();
        // f32 bytes 0..8 and i8 bytes 7..9 overlap.
        let _ = a.views_f32_i8([Region::new(0, 2)], Region::i8(7, 2));
    }

    /// A kernel's scratch is its own: f32 views with an f32 scratch, and a scratch that
    /// overlaps an input is refused.
    #[test]
    fn scratch_views_are_disjoint() {
        let mut a = Arena::<64>::new();
        a.f32_mut(Region::new(0, 2)).copy_from_slice(&[1.5, -2.0]);
        {
            let ([x], out, scratch) =
                a.views_f32_scratch([Region::new(0, 2)], Region::new(8, 2), Region::new(16, 4));
            scratch.copy_from_slice(&[x[1], x[0], 0.0, 0.0]);
            out.copy_from_slice(&scratch[..2]);
        }
        assert_eq!(a.f32(Region::new(8, 2)), &[-2.0, 1.5]);
    }

    #[test]
    #[should_panic(expected = "scratch overlaps")]
    fn scratch_overlapping_an_input_is_refused() {
        let mut a = Arena::<64>::new();
        let _ = a.views_f32_scratch([Region::new(0, 4)], Region::new(16, 2), Region::new(8, 2));
    }

    #[test]
    #[should_panic(expected = "element type")]
    fn element_type_is_checked() {
        let a = Arena::<16>::new();
        let _ = a.f32(Region::i8(0, 4));
    }

    #[test]
    fn weights_read_little_endian() {
        static W: Weights<8> = Weights([0, 0, 128, 63, 0, 0, 0, 64]);
        assert_eq!(W.f32(), &[1.0, 2.0]);
        static B: Weights<8> = Weights([255, 255, 255, 255, 2, 1, 0, 0]);
        assert_eq!(B.i32(), &[-1, 258]);
        assert_eq!(&B.i8()[..2], &[-1, -1]);
    }
}
