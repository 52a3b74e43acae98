//! The Python methods several packed classes have in common, written once. PyO3 takes one
//! `#[pymethods]` block per class, so shared methods cannot live in a block of their own:
//! [`packed_pymethods!`] writes each class's block from its own methods and named groups of
//! shared ones.

/// `packed_pymethods! { impl Class with [group, ...] { own methods } }` is the `#[pymethods]`
/// block of `Class`: its own methods, then those of each group named:
/// - `getters(name: Type, ...)`: read-only properties answered by `self.inner.name()` (each may
///   carry its doc comment);
/// - `sizes`: the getters `in_features` and `out_features` of a layer;
/// - `int8_weight`: `weight()`, the int8 weight read back from `self.inner` (`weight_into`);
/// - `reduce_range`: the settable `reduce_range`, held in the field `reduce_range: AtomicBool`;
/// - `float_rows`: `forward(x)` and `try_forward(x)` over the class's own
///   `run(py, x, rows, out)`, which computes `rows` output rows of a float32 input (see
///   [`forward_rows`](super::linear::forward_rows)).
macro_rules! packed_pymethods {
    (impl $class:ident with [$($groups:tt)*] { $($methods:tt)* }) => {
        $crate::py::shared_methods::packed_pymethods!(@collect $class [$($groups)*] { $($methods)* });
    };
    (@collect $class:ident [] { $($methods:tt)* }) => {
        #[pyo3::pymethods]
        impl $class {
            $($methods)*
        }
    };
    (@collect $class:ident [getters($($(#[$doc:meta])* $name:ident: $type:ty),* $(,)?) $(, $($rest:tt)*)?] { $($methods:tt)* }) => {
        $crate::py::shared_methods::packed_pymethods!(@collect $class [$($($rest)*)?] {
            $($methods)*
            $(
                $(#[$doc])*
                #[getter]
                fn $name(&self) -> $type {
                    self.inner.$name()
                }
            )*
        });
    };
    (@collect $class:ident [sizes $(, $($rest:tt)*)?] { $($methods:tt)* }) => {
        $crate::py::shared_methods::packed_pymethods!(@collect $class [
            getters(
                /// The number of features of an input row.
                in_features: usize,
                /// The number of features of an output row.
                out_features: usize,
            )
            $(, $($rest)*)?
        ] { $($methods)* });
    };
    (@collect $class:ident [int8_weight $(, $($rest:tt)*)?] { $($methods:tt)* }) => {
        $crate::py::shared_methods::packed_pymethods!(@collect $class [$($($rest)*)?] {
            $($methods)*

            /// The int8 weight `(out_features, in_features)` as a new array, read back from the
            /// packed layout (the packed form is the only copy kept).
            fn weight<'py>(&self, py: pyo3::Python<'py>) -> pyo3::PyResult<pyo3::Bound<'py, numpy::PyArray2<i8>>> {
                let (rows, cols) = (self.inner.out_features(), self.inner.in_features());
                $crate::py::outputs::written_matrix(py, rows, cols, |out| self.inner.weight_into(out))
            }
        });
    };
    (@collect $class:ident [reduce_range $(, $($rest:tt)*)?] { $($methods:tt)* }) => {
        $crate::py::shared_methods::packed_pymethods!(@collect $class [$($($rest)*)?] {
            $($methods)*

            /// Whether every call quantizes int8 inputs to levels 0..127 (true, PyTorch's default)
            /// or 0..255 (false). Given at construction; setting it changes the calls from then on.
            /// Float16 weights quantize nothing and only keep the setting.
            #[getter]
            fn get_reduce_range(&self) -> bool {
                self.reduce_range.load(std::sync::atomic::Ordering::Relaxed)
            }

            #[setter]
            fn set_reduce_range(&self, reduce_range: bool) {
                self.reduce_range.store(reduce_range, std::sync::atomic::Ordering::Relaxed);
            }
        });
    };
    (@collect $class:ident [float_rows $(, $($rest:tt)*)?] { $($methods:tt)* }) => {
        $crate::py::shared_methods::packed_pymethods!(@collect $class [$($($rest)*)?] {
            $($methods)*

            /// `y` for a C-contiguous float32 input `x` of shape `(rows, in_features)`, as the
            /// class computes it; a new float32 array `(rows, out_features)`. The GIL is released
            /// for a large product.
            fn forward<'py>(
                &self,
                py: pyo3::Python<'py>,
                x: numpy::PyReadonlyArray2<'py, f32>,
            ) -> pyo3::PyResult<pyo3::Bound<'py, numpy::PyArrayDyn<f32>>> {
                let sizes = [self.inner.in_features(), self.inner.out_features()];
                $crate::py::linear::forward_rows(py, x, sizes, |x, rows, out| self.run(py, x, rows, out))
            }

            /// The module's forward when `x` needs no conversion (an `ndarray` itself of native
            /// float32, C-contiguous and aligned) and has any rank >= 1 with `in_features` in its
            /// last dimension: `y` of shape `x.shape[:-1] + (out_features,)` as `forward`
            /// computes it; None for any other `x` (the caller then normalises it, with its own
            /// messages, and calls `forward`).
            fn try_forward<'py>(
                &self,
                py: pyo3::Python<'py>,
                x: &pyo3::Bound<'py, pyo3::PyAny>,
            ) -> pyo3::PyResult<Option<pyo3::Bound<'py, numpy::PyArrayDyn<f32>>>> {
                let sizes = [self.inner.in_features(), self.inner.out_features()];
                $crate::py::linear::try_forward_rows(py, x, sizes, |x, rows, out| self.run(py, x, rows, out))
            }
        });
    };
}

pub(super) use packed_pymethods;
