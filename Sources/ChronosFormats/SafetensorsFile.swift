import ChronosTensor
import Foundation

/// A safetensors file opened by memory-mapping it; its tensors view the mapped bytes.
///
/// The header is validated on open, so every tensor handed out lies inside the file. Tensors
/// keep the mapping alive through their storage and stay valid after this object is released.
public final class SafetensorsFile: Sendable {
    /// The file this was opened from.
    public let url: URL
    /// Every tensor's description, in the order their bytes appear in the file.
    public let tensorInfos: [SafetensorsTensorInfo]
    /// The header's `__metadata__` map (empty when absent).
    public let metadata: [String: String]
    private let infoByName: [String: SafetensorsTensorInfo]
    private let mapping: MappedFile

    /// Maps the file at `url` read-only and validates its header.
    public init(url: URL) throws {
        let mapping = try MappedFile(path: url.path)
        let header = try SafetensorsHeader(parsing: mapping.bytes, path: url.path)
        self.url = url
        self.mapping = mapping
        tensorInfos = header.tensors
        metadata = header.metadata
        infoByName = Dictionary(uniqueKeysWithValues: header.tensors.map { ($0.name, $0) })
    }

    /// Tensor names in the order their bytes appear in the file.
    public var tensorNames: [String] { tensorInfos.map(\.name) }

    /// Whether the file holds a tensor called `name`.
    public func contains(_ name: String) -> Bool { infoByName[name] != nil }

    /// The dtype, shape and byte range of the tensor called `name`.
    public func info(named name: String) throws -> SafetensorsTensorInfo {
        guard let info = infoByName[name] else { throw SafetensorsError.tensorNotFound(tensor: name, path: url.path) }
        return info
    }

    /// The tensor called `name`, viewing the mapped bytes without copying them.
    ///
    /// A tensor whose bytes are not aligned to its element size (possible only in files whose
    /// writer did not pad the header to 8 bytes) is copied instead, so kernels may load it
    /// with aligned reads.
    public func tensor(named name: String) throws -> Tensor {
        let info = try info(named: name)
        return mapping.tensor(dtype: info.dtype, shape: info.shape, byteRange: info.byteRange)
    }
}
