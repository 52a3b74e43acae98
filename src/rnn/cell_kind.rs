//! The four recurrences a layer can run ([`CellKind`]), by PyTorch's mode names.

/// The recurrence of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    /// Gates `i, f, g, o`; cell state `c`.
    Lstm,
    /// Gates `r, z, n`.
    Gru,
    /// `h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`.
    RnnTanh,
    /// `h' = relu(W_ih x + b_ih + W_hh h + b_hh)`.
    RnnRelu,
}

impl CellKind {
    /// PyTorch's mode names: "LSTM", "GRU", "RNN_TANH", "RNN_RELU".
    pub fn from_name(name: &str) -> Option<CellKind> {
        match name {
            "LSTM" => Some(CellKind::Lstm),
            "GRU" => Some(CellKind::Gru),
            "RNN_TANH" => Some(CellKind::RnnTanh),
            "RNN_RELU" => Some(CellKind::RnnRelu),
            _ => None,
        }
    }

    /// Rows of `W_ih` and `W_hh` per hidden unit.
    pub fn gates(self) -> usize {
        match self {
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
            CellKind::RnnTanh | CellKind::RnnRelu => 1,
        }
    }

    /// True for the LSTM, the only recurrence with a cell state.
    pub fn has_cell_state(self) -> bool {
        self == CellKind::Lstm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(CellKind::from_name("LSTM"), Some(CellKind::Lstm));
        assert_eq!(CellKind::from_name("RNN_RELU"), Some(CellKind::RnnRelu));
        assert_eq!(CellKind::from_name("lstm"), None);
        assert_eq!([CellKind::Lstm, CellKind::Gru, CellKind::RnnTanh].map(CellKind::gates), [4, 3, 1]);
        assert!(CellKind::Lstm.has_cell_state() && !CellKind::Gru.has_cell_state());
    }
}
