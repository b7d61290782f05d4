//! Shape, strides and offset: how a tensor's elements sit in its storage.
//!
//! All views (reshape, permute, transpose, narrow) are computed here, on the layout alone,
//! without touching data. Strides count elements, not bytes, and are never negative.

use crate::error::{Error, Result};

/// Where the elements of a tensor live inside its storage: element `[i0, i1, ...]` is at
/// `offset + i0 * strides[0] + i1 * strides[1] + ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
}

impl Layout {
    /// A row-major (C-contiguous) layout of `shape` starting at element 0.
    pub fn contiguous(shape: &[usize]) -> Layout {
        let mut strides = vec![0; shape.len()];
        let mut s = 1;
        for d in (0..shape.len()).rev() {
            strides[d] = s;
            s *= shape[d];
        }
        Layout {
            shape: shape.to_vec(),
            strides,
            offset: 0,
        }
    }

    /// The sizes of each dimension.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element step of each dimension.
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    /// The storage index of element `[0, 0, ...]`.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the elements are row-major and gap-free, so that the tensor is the storage
    /// range `offset .. offset + numel`.
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for d in (0..self.shape.len()).rev() {
            // A dimension of size 1 may carry any stride.
            if self.shape[d] != 1 && self.strides[d] != expected {
                return false;
            }
            expected *= self.shape[d];
        }
        true
    }

    /// One past the largest storage index this layout touches (0 for an empty tensor).
    pub fn storage_end(&self) -> usize {
        if self.numel() == 0 {
            return self.offset;
        }
        self.offset
            + self
                .shape
                .iter()
                .zip(&self.strides)
                .map(|(&n, &s)| (n - 1) * s)
                .sum::<usize>()
            + 1
    }

    /// The same elements seen with a new shape of the same number of elements.
    /// Only a contiguous layout can be reshaped without a copy.
    pub fn reshape(&self, shape: &[usize]) -> Result<Layout> {
        let numel: usize = shape.iter().product();
        if numel != self.numel() {
            return Err(Error::Shape(format!(
                "cannot reshape {:?} ({} elements) to {:?} ({} elements)",
                self.shape,
                self.numel(),
                shape,
                numel
            )));
        }
        if !self.is_contiguous() {
            return Err(Error::Shape(format!(
                "cannot reshape a non-contiguous view of shape {:?} (strides {:?}); call contiguous() first",
                self.shape, self.strides
            )));
        }
        let mut l = Layout::contiguous(shape);
        l.offset = self.offset;
        Ok(l)
    }

    /// Reorders the dimensions: dimension `i` of the result is dimension `dims[i]` of self.
    pub fn permute(&self, dims: &[usize]) -> Result<Layout> {
        let n = self.shape.len();
        let mut seen = vec![false; n];
        if dims.len() != n
            || dims
                .iter()
                .any(|&d| d >= n || std::mem::replace(&mut seen[d], true))
        {
            return Err(Error::Shape(format!(
                "permute({dims:?}) is not a permutation of the {n} dimensions of {:?}",
                self.shape
            )));
        }
        Ok(Layout {
            shape: dims.iter().map(|&d| self.shape[d]).collect(),
            strides: dims.iter().map(|&d| self.strides[d]).collect(),
            offset: self.offset,
        })
    }

    /// Swaps two dimensions.
    pub fn transpose(&self, a: usize, b: usize) -> Result<Layout> {
        let mut dims: Vec<usize> = (0..self.shape.len()).collect();
        if a >= dims.len() || b >= dims.len() {
            return Err(Error::Shape(format!(
                "transpose({a}, {b}) out of range for shape {:?}",
                self.shape
            )));
        }
        dims.swap(a, b);
        self.permute(&dims)
    }

    /// Keeps `len` entries of dimension `dim` starting at `start`.
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Layout> {
        if dim >= self.shape.len()
            || start
                .checked_add(len)
                .is_none_or(|end| end > self.shape[dim])
        {
            return Err(Error::Shape(format!(
                "narrow(dim {dim}, start {start}, len {len}) out of range for shape {:?}",
                self.shape
            )));
        }
        let mut l = self.clone();
        l.offset += start * self.strides[dim];
        l.shape[dim] = len;
        Ok(l)
    }

    /// Storage indices of all elements in row-major order of the view.
    pub fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        let n = self.numel();
        let mut idx = vec![0usize; self.shape.len()];
        let mut pos = self.offset;
        (0..n).map(move |i| {
            if i > 0 {
                // Odometer increment of the multi-index, updating the storage position.
                for d in (0..idx.len()).rev() {
                    idx[d] += 1;
                    pos += self.strides[d];
                    if idx[d] < self.shape[d] {
                        break;
                    }
                    pos -= self.strides[d] * idx[d];
                    idx[d] = 0;
                }
            }
            pos
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_strides_are_row_major() {
        let l = Layout::contiguous(&[2, 3, 4]);
        assert_eq!(l.strides(), &[12, 4, 1]);
        assert!(l.is_contiguous());
        assert_eq!(l.storage_end(), 24);
    }

    #[test]
    fn transpose_then_indices_walks_columns() {
        let l = Layout::contiguous(&[2, 3]).transpose(0, 1).unwrap();
        assert_eq!(l.shape(), &[3, 2]);
        assert!(!l.is_contiguous());
        assert_eq!(l.indices().collect::<Vec<_>>(), vec![0, 3, 1, 4, 2, 5]);
        assert!(l.reshape(&[6]).is_err());
    }

    #[test]
    fn narrow_offsets_and_keeps_strides() {
        let l = Layout::contiguous(&[4, 5]).narrow(1, 2, 3).unwrap();
        assert_eq!(l.offset(), 2);
        assert_eq!(l.indices().take(4).collect::<Vec<_>>(), vec![2, 3, 4, 7]);
        assert!(Layout::contiguous(&[4, 5]).narrow(1, 4, 2).is_err());
        assert!(Layout::contiguous(&[4, 5]).narrow(2, 0, 1).is_err());
    }

    #[test]
    fn bad_permutations_are_errors() {
        let l = Layout::contiguous(&[2, 3, 4]);
        assert!(l.permute(&[0, 0, 1]).is_err());
        assert!(l.permute(&[0, 1]).is_err());
        assert!(l.permute(&[0, 1, 3]).is_err());
        assert_eq!(l.permute(&[2, 0, 1]).unwrap().shape(), &[4, 2, 3]);
    }

    #[test]
    fn reshape_checks_element_count() {
        assert!(Layout::contiguous(&[2, 3]).reshape(&[7]).is_err());
        assert_eq!(
            Layout::contiguous(&[2, 3])
                .reshape(&[3, 2])
                .unwrap()
                .strides(),
            &[2, 1]
        );
    }
}
