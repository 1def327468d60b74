import ChronosTensor
import XCTest

@testable import ChronosModel

/// The hybrid attention of Chronos: caches against full-sequence runs, the sliding window's
/// reach, absolute positions, and MLA against its expanded equations.
final class ChronosAttentionTests: XCTestCase {
    /// Logits and lookahead probabilities of `ids` fed in chunks of `sizes` through one cache.
    private func run(_ model: TransformerLanguageModel, _ ids: [Int], chunks sizes: [Int], cache: ModelCache? = nil)
        throws -> (logits: [Float], lookahead: [Float])
    {
        let cache = cache ?? model.makeCache()
        var logits: [Float] = [], lookahead: [Float] = []
        var start = 0
        for size in sizes {
            let output = try model.forward(Array(ids[start..<(start + size)]), cache: cache, options: .recordingAll)
            logits += output.logits.floats
            lookahead += output.lookahead!.probabilities.floats
            start += size
        }
        XCTAssertEqual(start, ids.count)
        XCTAssertEqual(cache.offset, ids.count)
        return (logits, lookahead)
    }

    func testCachedDecodingMatchesTheFullSequenceForEveryAttentionKind() throws {
        let ids = TinyChronos.ids(11)
        for kinds in [[ChronosAttentionKind.mla, .sliding, .sliding], [.sliding, .sliding], [.mla, .mla]] {
            let model = try TinyChronos.model(TinyChronos.configuration(kinds, window: 3))
            let full = try run(model, ids, chunks: [ids.count])
            for chunks in [Array(repeating: 1, count: ids.count), [2, 4, 5], [6, 1, 4]] {
                let incremental = try run(model, ids, chunks: chunks)
                XCTAssertLessThanOrEqual(maxAbsoluteDifference(incremental.logits, full.logits), 1e-4, "\(kinds) in chunks \(chunks)")
                XCTAssertLessThanOrEqual(maxAbsoluteDifference(incremental.lookahead, full.lookahead), 1e-4, "\(kinds) in chunks \(chunks)")
            }
            // Caches that keep every position (keys and values as given) give the same answer.
            let standard = try run(model, ids, chunks: [4, 7], cache: ModelCache(layerCount: kinds.count))
            XCTAssertLessThanOrEqual(maxAbsoluteDifference(standard.logits, full.logits), 1e-4, "\(kinds) with standard caches")
        }
    }

    func testMakeCacheGivesEachLayerKindItsOwnCache() throws {
        let model = try TinyChronos.model(TinyChronos.configuration([.mla, .sliding]))
        let cache = model.makeCache()
        XCTAssertTrue(cache.layers[0] is LatentKVCache)
        XCTAssertEqual((cache.layers[1] as? SlidingWindowKVCache)?.window, 3)
        _ = try model.forward(TinyChronos.ids(9), cache: cache)
        // The latent cache holds [k_rope ; c] per position; the sliding one only the window.
        let latent = cache.layers[0] as! LatentKVCache, sliding = cache.layers[1] as! SlidingWindowKVCache
        XCTAssertEqual(latent.bytesPerPosition, (2 + 6) * 4)
        XCTAssertEqual(latent.byteCount, 256 * (2 + 6) * 4)
        // The window's 2 earlier positions and one more, so that a failed step can be undone.
        XCTAssertEqual(sliding.heldCount, 3)
        XCTAssertEqual(sliding.firstRetainedPosition, 6)
    }

    func testATokenOutsideTheWindowDoesNotReachLaterPositions() throws {
        // Two sliding layers of window 3: token 0 reaches positions up to 0 + 2·(3 − 1) = 4.
        let model = try TinyChronos.model(TinyChronos.configuration([.sliding, .sliding], window: 3))
        var ids = TinyChronos.ids(10)
        let reference = try model.forward(ids, cache: model.makeCache())
        ids[0] = (ids[0] + 5) % 13
        let perturbed = try model.forward(ids, cache: model.makeCache())
        for position in 0..<10 {
            let difference = maxAbsoluteDifference(perturbed.row(position), reference.row(position))
            if position <= 4 {
                XCTAssertGreaterThan(difference, 1e-3, "position \(position) should see token 0")
            } else {
                XCTAssertLessThanOrEqual(difference, 1e-5, "position \(position) is outside the window's reach")
            }
        }
    }

    /// The sliding attention layer of `model`'s layer `index`.
    private func slidingAttention(_ model: TransformerLanguageModel, layer index: Int) -> Attention {
        guard case .grouped(let attention) = model.layers[index].mixer else { fatalError("layer \(index) is not sliding") }
        return attention
    }

    func testSlidingLayerOutputIgnoresRowsOutsideTheWindowExactly() throws {
        let model = try TinyChronos.model(TinyChronos.configuration([.sliding], window: 3))
        let attention = slidingAttention(model, layer: 0)
        var x = randomValues(9 * 8, seed: 3)
        let reference = attention(Tensor(shape: [9, 8], values: x), cache: SlidingWindowKVCache(window: 3)).floats
        for i in 0..<8 { x[i] += 0.7 }  // row 0
        let perturbed = attention(Tensor(shape: [9, 8], values: x), cache: SlidingWindowKVCache(window: 3)).floats
        XCTAssertEqual(Array(perturbed[(3 * 8)...]), Array(reference[(3 * 8)...]))
        XCTAssertNotEqual(Array(perturbed[(2 * 8)..<(3 * 8)]), Array(reference[(2 * 8)..<(3 * 8)]))
    }

    func testSlidingAttentionPastTheWindowMatchesAWindowlessReferenceAtAbsolutePositions() throws {
        let model = try TinyChronos.model(TinyChronos.configuration([.sliding], window: 3))
        let attention = slidingAttention(model, layer: 0)
        let tokens = 9, hidden = 8, heads = 2, headDim = 4, window = 3
        let xValues = randomValues(tokens * hidden, seed: 5)
        let x = Reference.rows(Tensor(shape: [tokens, hidden], values: xValues))

        // Reference: for each t, plain causal attention over exactly positions t−W+1 … t, RoPE
        // at each position's absolute index.
        let wq = attention.query.weight.floats, wk = attention.key.weight.floats, wv = attention.value.weight.floats
        let wo = attention.output.weight.floats
        let keys = x.enumerated().map { s, row in
            Reference.rope(Reference.matvec(wk, rows: headDim, cols: hidden, row), position: s, base: 10_000)
        }
        let values = x.map { Reference.matvec(wv, rows: headDim, cols: hidden, $0) }
        var expected: [Double] = []
        for t in 0..<tokens {
            let q = Reference.matvec(wq, rows: heads * headDim, cols: hidden, x[t])
            var concatenated: [Double] = []
            for h in 0..<heads {
                let qh = Reference.rope(Array(q[(h * headDim)..<((h + 1) * headDim)]), position: t, base: 10_000)
                let visible = Array(max(0, t - window + 1)...t)
                let p = Reference.softmax(visible.map { Reference.dot(qh, keys[$0]) / Double(headDim).squareRoot() })
                concatenated += (0..<headDim).map { d in zip(visible, p).reduce(0) { $0 + $1.1 * values[$1.0][d] } }
            }
            expected += Reference.matvec(wo, rows: hidden, cols: heads * headDim, concatenated)
        }

        let full = attention(Tensor(shape: [tokens, hidden], values: xValues), cache: SlidingWindowKVCache(window: window)).floats
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(expected, full), 1e-4)

        let cache = SlidingWindowKVCache(window: window)
        var stepped: [Float] = []
        for t in 0..<tokens {
            stepped += attention(Tensor(shape: [1, hidden], values: Array(xValues[(t * hidden)..<((t + 1) * hidden)])), cache: cache).floats
        }
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(expected, stepped), 1e-4)

        // The retained keys are those of the last W − 1 positions, rotated at their absolute positions.
        XCTAssertEqual(cache.firstRetainedPosition, tokens - window + 1)
        let held = cache.update(keys: Tensor(zeros: [0, headDim]), values: Tensor(zeros: [0, headDim])).keys
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(Array(keys[(tokens - window + 1)...].joined()), held.floats), 1e-5)
    }

    func testLatentAttentionMatchesTheExpandedEquations() throws {
        let model = try TinyChronos.model(TinyChronos.configuration([.mla], window: 3))
        guard case .latent(let attention) = model.layers[0].mixer else { return XCTFail("layer 0 is not MLA") }
        let tokens = 7, hidden = 8, heads = 2, d = 4, r = 2, l = 6
        let xValues = randomValues(tokens * hidden, seed: 11)
        let x = Reference.rows(Tensor(shape: [tokens, hidden], values: xValues))

        // Expanded form: k_h = [k_rope ; W_uk,h c], v_h = W_uv,h c, scale 1/√(d + r).
        guard case .direct(let query) = attention.query else { return XCTFail("Chronos projects queries directly") }
        let wq = query.weight.floats, wdkv = attention.latentDown.weight.floats, wkr = attention.ropeKey.weight.floats
        let wuk = attention.keyUp.weight.floats, wuv = attention.valueUp.weight.floats, wo = attention.output.weight.floats
        let norm = attention.latentNorm.floats
        let latents = x.map { Reference.rmsNorm(Reference.matvec(wdkv, rows: l, cols: hidden, $0), norm, eps: 1e-6) }
        let ropeKeys = x.enumerated().map { s, row in
            Reference.rope(Reference.matvec(wkr, rows: r, cols: hidden, row), position: s, base: 10_000)
        }
        func up(_ w: [Float], head: Int, _ c: [Double]) -> [Double] {
            Reference.matvec(Array(w[(head * d * l)..<((head + 1) * d * l)]), rows: d, cols: l, c)
        }
        var expected: [Double] = []
        for t in 0..<tokens {
            let q = Reference.matvec(wq, rows: heads * (r + d), cols: hidden, x[t])
            var concatenated: [Double] = []
            for h in 0..<heads {
                let base = h * (r + d)
                let qh = Reference.rope(Array(q[base..<(base + r)]), position: t, base: 10_000) + Array(q[(base + r)..<(base + r + d)])
                let scores = (0...t).map { s in Reference.dot(qh, ropeKeys[s] + up(wuk, head: h, latents[s])) / Double(d + r).squareRoot() }
                let p = Reference.softmax(scores)
                let vs = (0...t).map { up(wuv, head: h, latents[$0]) }
                concatenated += (0..<d).map { i in (0...t).reduce(0) { $0 + p[$1] * vs[$1][i] } }
            }
            expected += Reference.matvec(wo, rows: hidden, cols: heads * d, concatenated)
        }

        let full = attention(Tensor(shape: [tokens, hidden], values: xValues), cache: LatentKVCache(latentDim: l, ropeDim: r)).floats
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(expected, full), 1e-4)
        let cache = LatentKVCache(latentDim: l, ropeDim: r)
        var stepped: [Float] = []
        for chunk in [0..<3, 3..<4, 4..<7] {
            stepped +=
                attention(
                    Tensor(shape: [chunk.count, hidden], values: Array(xValues[(chunk.lowerBound * hidden)..<(chunk.upperBound * hidden)])),
                    cache: cache
                ).floats
        }
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(expected, stepped), 1e-4)

        // The cache holds exactly [k_rope ; c] per position, nothing per head.
        let (heldKeys, heldLatents) = cache.update(keys: Tensor(zeros: [0, r]), values: Tensor(zeros: [0, l]))
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(Array(ropeKeys.joined()), heldKeys.floats), 1e-5)
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(Array(latents.joined()), heldLatents.floats), 1e-5)
    }

    func testSlidingCacheKeepsOnlyTheWindowAndTrims() {
        let cache = SlidingWindowKVCache(window: 3, step: 4)
        func rows(_ first: Int, _ count: Int, width: Int) -> Tensor {
            Tensor(shape: [count, width], values: (0..<(count * width)).map { Float(first * width + $0) })
        }
        // A first chunk longer than the window comes back as given; the last 2 positions stay.
        let (keys, _) = cache.update(keys: rows(0, 5, width: 2), values: rows(0, 5, width: 1))
        XCTAssertEqual(keys.floats, rows(0, 5, width: 2).floats)
        XCTAssertEqual(cache.heldCount, 2)
        XCTAssertEqual(cache.firstRetainedPosition, 3)
        for position in 5..<20 {
            XCTAssertEqual(cache.firstRetainedPosition, position - 2)
            let (k, v) = cache.update(keys: rows(position, 1, width: 2), values: rows(position, 1, width: 1))
            XCTAssertEqual(k.floats, rows(position - 2, 3, width: 2).floats)
            XCTAssertEqual(v.floats, rows(position - 2, 3, width: 1).floats)
        }
        XCTAssertEqual(cache.offset, 20)
        XCTAssertEqual(cache.byteCount, 4 * (2 + 1) * 4, "memory stays at the window, not the sequence")
        XCTAssertEqual(cache.trim(1), 1)
        XCTAssertEqual(cache.offset, 19)
        XCTAssertEqual(cache.heldCount, 1)
        XCTAssertEqual(cache.firstRetainedPosition, 18)
        let (k, _) = cache.update(keys: rows(19, 1, width: 2), values: rows(19, 1, width: 1))
        XCTAssertEqual(k.floats, rows(18, 2, width: 2).floats)
    }

    /// A model cache rewinds a pass only as far as every layer can forget exactly: a sliding
    /// layer as far as its extra positions reach once it has dropped any.
    func testAModelCacheRewindsOnlyWhatEveryLayerCanForgetExactly() {
        func rows(_ first: Int, _ count: Int) -> Tensor {
            Tensor(shape: [count, 2], values: (0..<(count * 2)).map { Float(first * 2 + $0) })
        }
        let sliding = SlidingWindowKVCache(window: 3, extraPositions: 1, step: 4), whole = StandardKVCache(step: 4)
        XCTAssertEqual(sliding.rewindablePositions, 0)
        for position in 0..<3 {
            for layer in [sliding, whole] as [any KVCache] { _ = layer.update(keys: rows(position, 1), values: rows(position, 1)) }
        }
        XCTAssertEqual(sliding.rewindablePositions, 3, "nothing dropped yet")
        for position in 3..<10 {
            for layer in [sliding, whole] as [any KVCache] { _ = layer.update(keys: rows(position, 1), values: rows(position, 1)) }
        }
        XCTAssertEqual(sliding.rewindablePositions, 1)
        XCTAssertEqual(whole.rewindablePositions, 10)
        let cache = ModelCache(layers: [sliding, whole], offset: 10)
        XCTAssertFalse(cache.rewind(to: 8), "the sliding layer keeps one position beyond its window")
        XCTAssertEqual(cache.layers.map(\.offset), [10, 10])
        XCTAssertTrue(cache.rewind(to: 9))
        XCTAssertEqual(cache.offset, 9)
        XCTAssertEqual(sliding.update(keys: rows(9, 1), values: rows(9, 1)).keys.floats, rows(7, 3).floats, "the window as before")

        let narrow = SlidingWindowKVCache(window: 3, step: 4)
        for position in 0..<5 { _ = narrow.update(keys: rows(position, 1), values: rows(position, 1)) }
        XCTAssertEqual(narrow.rewindablePositions, 0)
        XCTAssertFalse(ModelCache(layers: [narrow], offset: 5).rewind(to: 4))
    }
}

extension Attention {
    /// The layer over one sequence: all of `x`'s rows, at positions `cache.offset…`.
    func callAsFunction(_ x: Tensor, cache: any KVCache) -> Tensor {
        self(x, sequences: [SequenceRows(rows: 0..<x.shape[0], cache: cache)])
    }
}

extension LatentAttention {
    /// The layer over one sequence: all of `x`'s rows, at positions `cache.offset…`.
    func callAsFunction(_ x: Tensor, cache: any KVCache) -> Tensor {
        self(x, sequences: [SequenceRows(rows: 0..<x.shape[0], cache: cache)])
    }
}
