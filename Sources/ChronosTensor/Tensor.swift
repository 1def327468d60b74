/// An n-dimensional array: a shape, element strides and a dtype over shared storage.
///
/// Tensors are views: copying a `Tensor` shares its bytes (like a PyTorch tensor), and
/// `copy()` duplicates them. Kernels work on contiguous row-major tensors; strided views come
/// from `transposed` and `slice`, and `contiguous()` materialises them.
public struct Tensor: @unchecked Sendable {
    /// Element type of the storage.
    public let dtype: DType
    /// Extent of each dimension, outermost first.
    public let shape: [Int]
    /// Distance in elements between neighbours along each dimension.
    public let strides: [Int]
    /// Index of the first element within the storage, in elements.
    public let offset: Int
    /// The bytes this tensor views.
    public let storage: TensorStorage
    /// Where this tensor sits in a recorded computation, when gradients are being recorded.
    public let gradientNode: GradientNode?

    /// Wraps existing storage; the view must lie inside it.
    public init(
        dtype: DType, shape: [Int], strides: [Int]? = nil, offset: Int = 0, storage: TensorStorage,
        gradientNode: GradientNode? = nil
    ) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        let strides = strides ?? Tensor.contiguousStrides(shape)
        precondition(strides.count == shape.count, "strides \(strides) do not match shape \(shape)")
        self.dtype = dtype
        self.shape = shape
        self.strides = strides
        self.offset = offset
        self.storage = storage
        self.gradientNode = gradientNode
        if !shape.contains(0) {
            let last = offset + zip(shape, strides).reduce(0) { $0 + ($1.0 - 1) * $1.1 }
            precondition(
                offset >= 0 && dtype.byteCount(last + 1) <= storage.byteCount,
                "view \(shape) at offset \(offset) exceeds storage of \(storage.byteCount) bytes")
        }
        if dtype.isQuantized {
            precondition(
                shape.last.map { $0 % dtype.blockElements == 0 } ?? false && strides.last == 1 && offset % dtype.blockElements == 0,
                "a \(dtype) tensor's rows are whole blocks of \(dtype.blockElements), got \(shape)")
        }
    }

    /// A new zero-filled contiguous tensor.
    public init(zeros shape: [Int], dtype: DType = .f32) {
        let count = shape.reduce(1, *)
        self.init(dtype: dtype, shape: shape, storage: TensorStorage(zeroedByteCount: dtype.byteCount(count)))
    }

    /// A new f32 tensor whose contents are undefined until written: for op outputs that a
    /// kernel overwrites entirely.
    init(uninitialized shape: [Int]) {
        self.init(dtype: .f32, shape: shape, storage: TensorStorage(uninitializedByteCount: shape.reduce(1, *) * 4))
    }

    /// A new tensor holding `values` (converted to `dtype`), laid out row-major in `shape`.
    public init(shape: [Int], values: [Float], dtype: DType = .f32) {
        precondition(shape.reduce(1, *) == values.count, "\(values.count) values do not fill shape \(shape)")
        self.init(zeros: shape, dtype: dtype)
        values.withUnsafeBufferPointer { store($0) }
    }

    /// Row-major strides for `shape`.
    public static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for axis in shape.indices.reversed() {
            strides[axis] = running
            running *= shape[axis]
        }
        return strides
    }

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
    /// Number of dimensions.
    public var rank: Int { shape.count }
    /// Bytes the elements occupy when contiguous.
    public var byteCount: Int { dtype.byteCount(count) }
    /// Whether the elements are laid out row-major without gaps.
    public var isContiguous: Bool {
        var expected = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            if shape[axis] == 0 { return true }
            if shape[axis] != 1 && strides[axis] != expected { return false }
            expected *= shape[axis]
        }
        return true
    }

    /// Address of the first element.
    public var rawPointer: UnsafeMutableRawPointer { storage.base + dtype.byteCount(offset) }

    /// The elements as f32, for contiguous f32 tensors.
    public var floatPointer: UnsafeMutablePointer<Float> {
        precondition(dtype == .f32, "expected an f32 tensor, got \(dtype)")
        precondition(isContiguous, "expected a contiguous tensor")
        return rawPointer.assumingMemoryBound(to: Float.self)
    }

    /// The same elements seen with another shape of equal element count (contiguous only).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(isContiguous, "reshape needs a contiguous tensor; call contiguous() first")
        precondition(newShape.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        let oldShape = shape
        return Autograd.record(Tensor(dtype: dtype, shape: newShape, offset: offset, storage: storage), inputs: [self]) { g in
            [g.contiguous().reshaped(oldShape)]
        }
    }

    /// A view with two axes swapped (no copy).
    public func transposed(_ a: Int = 0, _ b: Int = 1) -> Tensor {
        var shape = self.shape, strides = self.strides
        shape.swapAt(a, b)
        strides.swapAt(a, b)
        return Autograd.record(
            Tensor(dtype: dtype, shape: shape, strides: strides, offset: offset, storage: storage),
            inputs: [self]
        ) { g in [g.transposed(a, b).contiguous()] }
    }

    /// A view of indices `range` along `axis` (no copy).
    public func slice(_ range: Range<Int>, axis: Int = 0) -> Tensor {
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[axis], "slice \(range) outside axis \(axis) of \(shape)")
        var shape = self.shape
        shape[axis] = range.count
        let fullShape = self.shape
        let view = Tensor(
            dtype: dtype, shape: shape, strides: strides, offset: offset + range.lowerBound * strides[axis],
            storage: storage)
        return Autograd.record(view, inputs: [self]) { g in
            let full = Tensor(zeros: fullShape)
            full.slice(range, axis: axis).assign(g)
            return [full]
        }
    }

    /// Flat storage index of the element at `index` (one coordinate per axis).
    @inlinable
    public func storageIndex(_ index: [Int]) -> Int {
        var position = offset
        for axis in index.indices { position += index[axis] * strides[axis] }
        return position
    }

    /// Element at flat storage index `i`, widened to f32.
    @inlinable
    func element(atStorageIndex i: Int) -> Float {
        let base = storage.base
        switch dtype {
        case .f32: return base.load(fromByteOffset: i * 4, as: Float.self)
        case .f16: return HalfPrecision.float(fromF16: base.load(fromByteOffset: i * 2, as: UInt16.self))
        case .bf16: return HalfPrecision.float(fromBF16: base.load(fromByteOffset: i * 2, as: UInt16.self))
        case .i8: return Float(base.load(fromByteOffset: i, as: Int8.self))
        case .u8: return Float(base.load(fromByteOffset: i, as: UInt8.self))
        case .i32: return Float(base.load(fromByteOffset: i * 4, as: Int32.self))
        case .i64: return Float(base.load(fromByteOffset: i * 8, as: Int64.self))
        default:
            let block = dtype.blockElements
            return withUnsafeTemporaryAllocation(of: Float.self, capacity: block) { values in
                Quantization.dequantize(dtype, blocks: base + dtype.byteCount(i - i % block), into: values.baseAddress!, count: block)
                return values[i % block]
            }
        }
    }

    /// Element at `index`, widened to f32.
    public subscript(_ index: Int...) -> Float {
        precondition(index.count == rank, "index \(index) does not match rank \(rank)")
        return element(atStorageIndex: storageIndex(index))
    }

    /// Every element in row-major order, widened to f32.
    public var floats: [Float] {
        if dtype == .f32 && isContiguous {
            return Array(UnsafeBufferPointer(start: rawPointer.assumingMemoryBound(to: Float.self), count: count))
        }
        if dtype.isQuantized {
            precondition(isContiguous, "a \(dtype) tensor is read whole: its rows are blocks")
            return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                Quantization.dequantize(dtype, blocks: rawPointer, into: buffer.baseAddress!, count: count)
                initialized = count
            }
        }
        var out = [Float]()
        out.reserveCapacity(count)
        forEachStorageIndex { out.append(element(atStorageIndex: $0)) }
        return out
    }

    /// Every element in row-major order as exact integers (for integer and float tensors).
    public var integers: [Int64] {
        var out = [Int64]()
        out.reserveCapacity(count)
        forEachStorageIndex { i in
            let base = storage.base
            switch dtype {
            case .i64: out.append(base.load(fromByteOffset: i * 8, as: Int64.self))
            case .i32: out.append(Int64(base.load(fromByteOffset: i * 4, as: Int32.self)))
            default: out.append(Int64(element(atStorageIndex: i)))
            }
        }
        return out
    }

    /// Calls `body` with the storage index of every element, in row-major order.
    func forEachStorageIndex(_ body: (Int) -> Void) {
        if count == 0 { return }
        if isContiguous {
            for i in offset..<(offset + count) { body(i) }
            return
        }
        // Odometer over the outer axes; the innermost axis is a strided run.
        let inner = shape[rank - 1], innerStride = strides[rank - 1]
        var index = [Int](repeating: 0, count: rank)
        var start = offset
        for _ in 0..<(count / inner) {
            var position = start
            for _ in 0..<inner {
                body(position)
                position += innerStride
            }
            var axis = rank - 2
            while axis >= 0 {
                index[axis] += 1
                start += strides[axis]
                if index[axis] < shape[axis] { break }
                start -= strides[axis] * shape[axis]
                index[axis] = 0
                axis -= 1
            }
        }
    }

    /// Overwrites the elements, in row-major order, with `values` converted to this dtype.
    public func store(_ values: UnsafeBufferPointer<Float>) {
        precondition(values.count == count, "\(values.count) values for \(count) elements")
        if dtype.isQuantized {
            precondition(isContiguous, "a \(dtype) tensor is written whole: its rows are blocks")
            Quantization.quantize(dtype, values: values.baseAddress!, into: rawPointer, count: count)
            return
        }
        var k = 0
        let base = storage.base
        forEachStorageIndex { i in
            let v = values[k]
            k += 1
            switch dtype {
            case .f32: base.storeBytes(of: v, toByteOffset: i * 4, as: Float.self)
            case .f16: base.storeBytes(of: HalfPrecision.f16(from: v), toByteOffset: i * 2, as: UInt16.self)
            case .bf16: base.storeBytes(of: HalfPrecision.bf16(from: v), toByteOffset: i * 2, as: UInt16.self)
            case .i8: base.storeBytes(of: Int8(v), toByteOffset: i, as: Int8.self)
            case .u8: base.storeBytes(of: UInt8(v), toByteOffset: i, as: UInt8.self)
            case .i32: base.storeBytes(of: Int32(v), toByteOffset: i * 4, as: Int32.self)
            case .i64: base.storeBytes(of: Int64(v), toByteOffset: i * 8, as: Int64.self)
            default: preconditionFailure("quantised stores are whole")
            }
        }
    }

    /// A contiguous tensor with the same elements (self when already contiguous).
    public func contiguous() -> Tensor {
        isContiguous ? self : copy()
    }

    /// A contiguous copy with its own storage (recorded: gradients flow through it).
    public func copy() -> Tensor {
        Autograd.record(converted(to: dtype), inputs: [self]) { g in [g] }
    }

    /// Overwrites this view's elements with `source`'s (same shape), converting the dtype.
    public func assign(_ source: Tensor) {
        precondition(source.shape == shape, "assign: \(source.shape) into \(shape)")
        source.floats.withUnsafeBufferPointer { store($0) }
    }

    /// A contiguous copy converted to `newType`.
    public func converted(to newType: DType) -> Tensor {
        let out = Tensor(zeros: shape, dtype: newType)
        if newType == dtype && isContiguous {
            out.rawPointer.copyMemory(from: rawPointer, byteCount: byteCount)
        } else if newType == .f32 && dtype == .f32 {
            let source = storage.base.assumingMemoryBound(to: Float.self)
            var destination = out.floatPointer
            forEachStorageIndex { i in
                destination.pointee = source[i]
                destination += 1
            }
        } else if newType.isQuantized && isContiguous && count > 0 {
            // A million values at a time, so a large matrix never has a full f32 copy.
            let rowLength = shape.last!, rows = count / rowLength, chunk = max(1, (1 << 20) / rowLength)
            let matrix = reshaped([rows, rowLength])
            for start in stride(from: 0, to: rows, by: chunk) {
                let values = matrix.slice(start..<min(rows, start + chunk)).floats
                values.withUnsafeBufferPointer {
                    Quantization.quantize(
                        newType, values: $0.baseAddress!, into: out.rawPointer + newType.byteCount(start * rowLength), count: $0.count)
                }
            }
        } else if newType == dtype && !dtype.isQuantized {
            // Same type: copy bytes, so integers above 2^24 and NaN payloads survive.
            let size = dtype.byteSize
            var destination = out.rawPointer
            forEachStorageIndex { i in
                destination.copyMemory(from: storage.base + i * size, byteCount: size)
                destination += size
            }
        } else {
            floats.withUnsafeBufferPointer { out.store($0) }
        }
        return out
    }
}

extension Tensor: CustomStringConvertible {
    /// Shape, dtype and the first few elements.
    public var description: String {
        let head = floats.prefix(8).map { String(format: "%.4g", Double($0)) }.joined(separator: ", ")
        return "Tensor<\(dtype)>\(shape) [\(head)\(count > 8 ? ", …" : "")]"
    }
}
