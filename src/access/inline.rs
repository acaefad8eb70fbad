//! Short slices kept in place, longer ones on the heap. The directory's user keys and a
//! view's grants are kept so: at 100,000 users, reading them from an allocation of their own
//! would be one more cache miss per lookup.

/// Up to `N` items (at most 255) in place, more on the heap.
#[derive(Debug, Clone)]
pub(crate) enum InlineSlice<T, const N: usize> {
    Inline { len: u8, items: [T; N] },
    Heap(Box<[T]>),
}

impl<T: Copy + Default, const N: usize> InlineSlice<T, N> {
    /// The most items kept in place.
    pub(crate) const CAPACITY: usize = {
        assert!(N <= u8::MAX as usize, "the length is kept in a u8");
        N
    };

    pub(crate) fn new(v: &[T]) -> Self {
        if v.len() <= Self::CAPACITY {
            let mut items = [T::default(); N];
            items[..v.len()].copy_from_slice(v);
            InlineSlice::Inline {
                len: v.len() as u8,
                items,
            }
        } else {
            InlineSlice::Heap(v.into())
        }
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        match self {
            InlineSlice::Inline { len, items } => {
                items.get(..usize::from(*len)).unwrap_or_default()
            }
            InlineSlice::Heap(v) => v,
        }
    }
}

// a slice is its items: equal, hashed and borrowed as `[T]` (so a map keyed by it is
// probed with a plain slice)
impl<T: Copy + Default + PartialEq, const N: usize> PartialEq for InlineSlice<T, N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Copy + Default + Eq, const N: usize> Eq for InlineSlice<T, N> {}

impl<T: Copy + Default + std::hash::Hash, const N: usize> std::hash::Hash for InlineSlice<T, N> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl<T: Copy + Default, const N: usize> std::borrow::Borrow<[T]> for InlineSlice<T, N> {
    fn borrow(&self) -> &[T] {
        self.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_up_to_capacity_then_on_the_heap() {
        type Ints = InlineSlice<u32, 11>;
        let all: Vec<u32> = (100..100 + Ints::CAPACITY as u32 + 3).collect();
        for n in 0..=all.len() {
            let ints = Ints::new(&all[..n]);
            assert_eq!(ints.as_slice(), &all[..n]);
            assert_eq!(
                matches!(ints, Ints::Inline { .. }),
                n <= Ints::CAPACITY,
                "{n}"
            );
        }
    }

    /// Equal and hashed as the slice, whichever way it is kept: a map keyed by it finds
    /// keys by `&[T]`.
    #[test]
    fn a_map_finds_keys_by_slice() {
        type Key = InlineSlice<u8, 4>;
        let mut m = std::collections::HashMap::new();
        for k in [&b""[..], b"ab", b"abcd", b"abcde", b"abcdefgh"] {
            m.insert(Key::new(k), k.len());
        }
        for k in [&b""[..], b"ab", b"abcd", b"abcde", b"abcdefgh"] {
            assert_eq!(m.get(k), Some(&k.len()), "{k:?}");
        }
        assert_eq!(m.get(&b"abc"[..]), None);
        assert!(matches!(Key::new(b"abcde"), Key::Heap(_)));
        assert_eq!(Key::new(b"abcde"), Key::new(b"abcde"));
    }
}
