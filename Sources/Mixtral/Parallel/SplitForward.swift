import Foundation
import MixtralKernels

/// The exchanges of a split forward pass (`TensorParallel`): all-gathers that set the
/// ranks' columns of a matrix side by side, so that each rank continues with the whole of
/// it. One process: none of these runs.
extension LanguageModel {
    /// Floats of whole rows one all-gather brings at most: the buffers of a long prompt's
    /// exchange stay small.
    static let gatherPiece = 1 << 17

    /// Every rank holds the columns `columns[rank]` of each matrix i ([rows[i], width]) as a
    /// contiguous [rows[i], columns[rank].count] block at `local[i]`. Afterwards `whole[i]`
    /// holds every column of matrix i, on every rank. The rows of all the matrices go in
    /// pieces of at most `gatherPiece` floats.
    func gatherColumns(_ local: [UnsafePointer<Float>], rows: [Int], columns: [Range<Int>], width: Int,
                       into whole: [UnsafeMutablePointer<Float>]) {
        let mine = columns[communicator.rank].count
        let pieceRows = max(1, Self.gatherPiece / max(1, width))
        let send = UnsafeMutablePointer<Float>.allocate(capacity: max(1, pieceRows * mine))
        let received = UnsafeMutablePointer<Float>.allocate(capacity: max(1, pieceRows * width))
        defer {
            send.deallocate()
            received.deallocate()
        }
        var targets: [UnsafeMutablePointer<Float>] = []  // the whole rows of this piece
        func exchange() {
            guard !targets.isEmpty else { return }
            communicator.allGather(send, counts: columns.map { targets.count * $0.count }, into: received)
            var source = UnsafePointer(received)
            for share in columns {
                for target in targets {
                    (target + share.lowerBound).update(from: source, count: share.count)
                    source += share.count
                }
            }
            targets.removeAll(keepingCapacity: true)
        }
        for part in local.indices {
            for row in 0..<rows[part] {
                (send + targets.count * mine).update(from: local[part] + row * mine, count: mine)
                targets.append(whole[part] + row * width)
                if targets.count == pieceRows { exchange() }
            }
        }
        exchange()
    }

    /// This rank's rows of the hidden size (its o_proj or down output, [tokens, rows]) set
    /// beside the other ranks' in `whole` [tokens, hidden].
    func gatherHidden(_ mine: UnsafePointer<Float>, tokens: Int, into whole: UnsafeMutablePointer<Float>) {
        gatherColumns([mine], rows: [tokens], columns: shares.map(\.hidden), width: fullConfig.hiddenSize, into: [whole])
    }

    /// o_proj over the attention output [tokens, this rank's heads x headDim]: the whole
    /// projection [tokens, hidden] in `output`. Split, the heads' outputs are gathered first,
    /// so that each rank's rows of o_proj see every head.
    func projectAttention(_ attended: UnsafePointer<Float>, tokens: Int, _ o: WeightMatrix,
                          into output: UnsafeMutablePointer<Float>, products: ActivationPrecision) {
        guard communicator.size > 1 else {
            linear(attended, tokens: tokens, o, output, precision: products, pool: pool)
            return
        }
        let d = fullConfig.headDim
        let width = fullConfig.numHeads * d
        let whole = FloatBuffer(capacity: tokens * width)
        gatherColumns([attended], rows: [tokens], columns: shares.map { ($0.heads.lowerBound * d)..<($0.heads.upperBound * d) },
                      width: width, into: [whole.pointer])
        let mine = FloatBuffer(capacity: tokens * o.rows)
        linear(whole.pointer, tokens: tokens, o, mine.pointer, precision: products, pool: pool)
        gatherHidden(mine.pointer, tokens: tokens, into: output)
        withExtendedLifetime((whole, mine)) {}
    }

    /// Floats of whole activations a split feed-forward gathers at a time (1 MB: a decode
    /// step's experts together, even Mixtral-8x22B's two of 16,384; a prompt's in groups, so
    /// that its buffers stay small).
    static let activationGroup = 1 << 18

    /// `feedForward` split: each rank holds its intermediate rows of gate and up, and down's
    /// rows need all of them, so the activations are gathered between the two products. The
    /// calls run in groups of at most `activationGroup` whole activations (a decode step's
    /// experts in one exchange, a long prompt's in several, each group's buffers freed
    /// before the next). Streamed, the calls come grouped as each rank's slots allow: one
    /// call per exchange keeps the ranks' exchanges alike.
    func splitFeedForward(_ calls: [FeedForwardCall], products: ActivationPrecision) {
        for range in activationGroups(calls.map(\.tokens)) {
            let group = Array(calls[range])
            let buffers = gateAndUp(group, products: products)
            let whole = splitSwiGLU(buffers.map(\.pointer), tokens: group.map(\.tokens))
            let down = zip(group, whole).map { call, activations in
                LinearJob(activations.pointer, tokens: call.tokens, call.ffn.down, call.output)
            }
            linear(down, precision: products, pool: pool)
            withExtendedLifetime((buffers, whole)) {}
        }
    }

    /// Consecutive feed-forward calls (by their token counts) whose whole activations take
    /// at most `activationGroup` floats together, at least one call each; one call each
    /// when streamed.
    func activationGroups(_ tokens: [Int]) -> [Range<Int>] {
        let width = fullConfig.intermediateSize
        let limit = expertStreamer == nil ? Self.activationGroup : 0
        var groups: [Range<Int>] = []
        var first = 0
        while first < tokens.count {
            var end = first + 1
            var floats = tokens[first] * width
            while end < tokens.count, floats + tokens[end] * width <= limit {
                floats += tokens[end] * width
                end += 1
            }
            groups.append(first..<end)
            first = end
        }
        return groups
    }

    /// SwiGLU of several feed-forwards whose gate and up products this rank holds for its
    /// intermediate rows (`products[i]`: gate [tokens[i], rows], then up), made whole
    /// ([tokens, intermediate]) for their down projections.
    ///
    /// The activation is computed in place in whole-width rows (the other ranks' columns
    /// zero, their results discarded), because the kernels take a vector path for most of a
    /// buffer and a scalar one for its last elements: laid out as one process lays it out,
    /// every element takes the same path and gets the same bits. Then the ranks' columns
    /// are gathered.
    func splitSwiGLU(_ products: [UnsafeMutablePointer<Float>], tokens: [Int]) -> [FloatBuffer] {
        let width = fullConfig.intermediateSize
        let mine = shares[communicator.rank].intermediate
        let whole = tokens.map { FloatBuffer(capacity: max(1, $0 * width)) }
        let up = FloatBuffer(capacity: max(1, (tokens.max() ?? 0) * width))
        for (index, count) in tokens.enumerated() {
            let gate = products[index], local = products[index] + count * mine.count
            whole[index].pointer.update(repeating: 0, count: count * width)
            up.pointer.update(repeating: 0, count: count * width)
            for row in 0..<count {
                (whole[index].pointer + row * width + mine.lowerBound).update(from: gate + row * mine.count, count: mine.count)
                (up.pointer + row * width + mine.lowerBound).update(from: local + row * mine.count, count: mine.count)
            }
            swiGLU(whole[index].pointer, up.pointer, count: count * width)
            for row in 0..<count {  // this rank's columns, contiguous again, to send
                (gate + row * mine.count).update(from: whole[index].pointer + row * width + mine.lowerBound, count: mine.count)
            }
        }
        gatherColumns(products.map { UnsafePointer($0) }, rows: tokens, columns: shares.map(\.intermediate), width: width,
                      into: whole.map(\.pointer))
        withExtendedLifetime(up) {}
        return whole
    }
}
