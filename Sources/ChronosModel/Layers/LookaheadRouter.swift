import ChronosTensor

/// The lookahead router: from the hidden state after block 0 of token t, predicts the routed
/// experts of tokens t, t+1, …, t+K, so that an asynchronous prefetcher can load the experts of
/// the next K tokens while token t is computed.
///
///     z      = SiLU(W_1 · h_t + b_1)                       W_1: [H/4, H]
///     logits = W_2 · z + b_2                               W_2: [(K+1)·E, H/4], row k·E + e
///     Q^{(k)}_t = softmax_e(logits[k·E ..< (k+1)·E])       k = 0 … K
///
/// Offset 0 predicts the current token's experts; offset k predicts those of token t+k. The
/// head outputs one distribution over E expert ids per offset, so expert ids are shared across
/// layers: its training target for offset k is P_{t+k}, the mean over MoE layers of the router
/// distributions of token t+k, P_t = (1/L) Σ_l softmax(W_router,l · x_{l,t}), and the loss is
/// L_lookahead = mean over valid k of mean_t [−Σ_e sg(P_{t+k,e}) · log Q^{(k)}_{t,e}].
struct LookaheadRouter: Sendable {
    /// W_1, b_1: `[H/4, H]`, `[H/4]`.
    let hidden: Linear
    /// W_2, b_2: `[(K+1)·E, H/4]`, `[(K+1)·E]`.
    let output: Linear
    /// K: the furthest future token predicted.
    let steps: Int
    /// E: routed experts per layer.
    let experts: Int

    /// Width of the hidden layer for a residual stream of `hiddenSize`: H/4, at least 1.
    static func width(hiddenSize: Int) -> Int { max(1, hiddenSize / 4) }

    /// Logits `[T, K+1, E]` for block-0 hidden states `[T, H]`.
    func callAsFunction(_ h: Tensor) -> Tensor {
        output(hidden(h).silu()).reshaped([h.shape[0], steps + 1, experts])
    }
}
