import Foundation
import Hummingbird

/// The web UI's files (`Web/` in this package's resources), read into memory once and served as
/// `GET /` (the page) and `GET /ui/PATH` (its scripts, styles, string tables and icon).
public struct WebAssets: Sendable {
    /// One file: its bytes and its content type.
    public struct File: Sendable {
        /// The file's bytes.
        public var bytes: Data
        /// Its `Content-Type`.
        public var contentType: String
    }

    /// The files by their path under `Web/` (`index.html`, `i18n/en.json`).
    public let files: [String: File]

    /// The languages of the UI: each has a string table `i18n/CODE.json`.
    public static let languages = ["en", "zh-Hans", "zh-Hant", "ja"]

    /// Reads every file of `directory`.
    public init(directory: URL) throws {
        var files: [String: File] = [:]
        let base = directory.standardizedFileURL.resolvingSymlinksInPath().path
        let enumerator = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: [.isRegularFileKey])
        while let url = enumerator?.nextObject() as? URL {
            guard try url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile == true else { continue }
            let path = String(url.standardizedFileURL.resolvingSymlinksInPath().path.dropFirst(base.count + 1))
            files[path] = File(bytes: try Data(contentsOf: url), contentType: Self.contentType(of: path))
        }
        guard files["index.html"] != nil else { throw ServerSetupError("\(directory.path) has no index.html: the web UI is missing") }
        self.files = files
    }

    /// The files this package ships.
    public static func bundled() throws -> WebAssets {
        guard let directory = Bundle.module.url(forResource: "Web", withExtension: nil) else {
            throw ServerSetupError("the web UI's resources (Web/) are missing from the ChronosServer bundle")
        }
        return try WebAssets(directory: directory)
    }

    /// The answer to `GET /ui/PATH` (or `GET /` for `index.html`): the file, or nil when there is none.
    func response(for path: String) -> Response? {
        guard let file = files[path] else { return nil }
        var headers: HTTPFields = [.contentType: file.contentType, .cacheControl: "no-cache"]
        // Everything the page loads comes from this server: no script, style or font from elsewhere.
        headers[.contentSecurityPolicy] = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'"
        headers[.xContentTypeOptions] = "nosniff"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: file.bytes)))
    }

    /// The content type a file's extension says.
    static func contentType(of path: String) -> String {
        switch path.split(separator: ".").last {
        case "html": "text/html; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "js": "text/javascript; charset=utf-8"
        case "json": "application/json; charset=utf-8"
        case "svg": "image/svg+xml"
        default: "application/octet-stream"
        }
    }
}
