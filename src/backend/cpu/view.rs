//! A matrix seen in a slice through two strides, as the products take their operands.

/// A matrix in a slice: element (i, j) at `data[i·row + j·col]`.
pub(super) struct View<'m> {
    pub(super) data: &'m [f32],
    pub(super) row: usize,
    pub(super) col: usize,
}
