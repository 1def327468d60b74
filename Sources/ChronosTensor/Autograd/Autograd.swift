import Foundation

/// One recorded step of a computation: the nodes of its inputs and how to turn the gradient
/// of its output into gradients of those inputs. A leaf (a parameter) has no inputs and
/// accumulates the gradients that reach it.
public final class GradientNode: @unchecked Sendable {
    let inputs: [GradientNode?]
    let backward: ((Tensor) -> [Tensor?])?
    /// The accumulated gradient of a leaf, nil until a backward pass reaches it.
    public internal(set) var gradient: Tensor?

    init(inputs: [GradientNode?], backward: ((Tensor) -> [Tensor?])?) {
        self.inputs = inputs
        self.backward = backward
    }

    /// Whether this node is a parameter rather than the output of an operation.
    public var isLeaf: Bool { backward == nil }
}

/// Reverse-mode automatic differentiation over `Tensor` operations.
///
/// While recording is on, every operation whose inputs carry a `GradientNode` attaches one to
/// its output, holding a closure that maps the output's gradient to its inputs' gradients.
/// `backward(_:)` walks that graph from a scalar loss in reverse topological order and adds
/// each parameter's gradient to its node. Recording is switched per thread, so threads that
/// train replicas side by side (or run inference beside training) do not disturb each other;
/// with it off (the default, as in inference) operations attach nothing and cost nothing extra.
public enum Autograd {
    /// The calling thread's recording switch: a non-nil value means on.
    private static let recordingKey: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "cannot create the autograd thread key")
        return key
    }()

    /// Whether operations on the calling thread are currently recorded.
    public static var isRecording: Bool { pthread_getspecific(recordingKey) != nil }

    /// Runs `body` with recording switched on (or off) on the calling thread, restoring the
    /// previous state after.
    public static func recording<T>(_ enabled: Bool = true, _ body: () throws -> T) rethrows -> T {
        let previous = pthread_getspecific(recordingKey)
        pthread_setspecific(recordingKey, enabled ? UnsafeRawPointer(bitPattern: 1) : nil)
        defer { pthread_setspecific(recordingKey, previous) }
        return try body()
    }

    /// Attaches a node to `output` when recording and some input takes part in the graph;
    /// `backward` receives the output's gradient and returns one gradient (or nil) per input.
    public static func record(_ output: Tensor, inputs: [Tensor], backward: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        guard isRecording, inputs.contains(where: { $0.gradientNode != nil }) else { return output }
        let node = GradientNode(inputs: inputs.map(\.gradientNode), backward: backward)
        return Tensor(
            dtype: output.dtype, shape: output.shape, strides: output.strides, offset: output.offset,
            storage: output.storage, gradientNode: node)
    }

    /// Back-propagates from `loss` (any shape; `seed` defaults to ones), adding the result to
    /// the gradient of every leaf it depends on. Runs with recording off.
    public static func backward(_ loss: Tensor, seed: Tensor? = nil) {
        guard let root = loss.gradientNode else { return }
        let order = topologicalOrder(from: root)
        var gradients: [ObjectIdentifier: Tensor] = [
            ObjectIdentifier(root): seed ?? Tensor(shape: loss.shape, values: [Float](repeating: 1, count: loss.count))
        ]
        recording(false) {
            for node in order.reversed() {
                guard let gradient = gradients.removeValue(forKey: ObjectIdentifier(node)) else { continue }
                guard let backward = node.backward else {
                    node.gradient = node.gradient.map { accumulate($0, gradient) } ?? gradient.contiguous()
                    continue
                }
                let inputGradients = backward(gradient)
                precondition(inputGradients.count == node.inputs.count, "a backward rule returned the wrong number of gradients")
                for (input, inputGradient) in zip(node.inputs, inputGradients) {
                    guard let input, let inputGradient else { continue }
                    let key = ObjectIdentifier(input)
                    gradients[key] = gradients[key].map { accumulate($0, inputGradient) } ?? inputGradient
                }
            }
        }
    }

    /// Nodes reachable from `root`, each after all of its inputs.
    private static func topologicalOrder(from root: GradientNode) -> [GradientNode] {
        var order: [GradientNode] = []
        var visited: Set<ObjectIdentifier> = []
        var stack: [(node: GradientNode, expanded: Bool)] = [(root, false)]
        while let (node, expanded) = stack.popLast() {
            if expanded {
                order.append(node)
                continue
            }
            guard visited.insert(ObjectIdentifier(node)).inserted else { continue }
            stack.append((node, true))
            for case let input? in node.inputs where !visited.contains(ObjectIdentifier(input)) {
                stack.append((input, false))
            }
        }
        return order
    }

    static func accumulate(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "gradient shapes differ: \(a.shape) and \(b.shape)")
        let a = a.contiguous(), b = b.contiguous(), out = Tensor(zeros: a.shape)
        Elementwise.add(a.floatPointer, b.floatPointer, out.floatPointer, count: a.count)
        return out
    }
}

extension Tensor {
    /// The same values as a leaf of the gradient graph (a trainable parameter); its gradient
    /// accumulates in `gradient` on each backward pass.
    public func requiringGradient() -> Tensor {
        Tensor(
            dtype: dtype, shape: shape, strides: strides, offset: offset, storage: storage,
            gradientNode: GradientNode(inputs: [], backward: nil))
    }

    /// The same values cut off from the gradient graph.
    public func detached() -> Tensor {
        Tensor(dtype: dtype, shape: shape, strides: strides, offset: offset, storage: storage)
    }

    /// The gradient accumulated in this leaf, if any.
    public var gradient: Tensor? { gradientNode?.gradient }

    /// Clears this leaf's accumulated gradient.
    public func zeroGradient() { gradientNode?.gradient = nil }

    /// Adds the gradient accumulated in `other` (a leaf over the same parameter, such as a
    /// training replica's) to this leaf's.
    public func accumulateGradient(from other: Tensor) {
        guard let node = gradientNode, let incoming = other.gradient else { return }
        node.gradient = node.gradient.map { Autograd.accumulate($0, incoming) } ?? incoming.contiguous()
    }
}
