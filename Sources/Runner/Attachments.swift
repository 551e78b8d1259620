import Archive
import Foundation

/// The files a run leaves under `_attachments/` in its working folder: kept when it ends, as one
/// ZIP the executor stores with the payloads (`GET /api/v1/process/{id}/attachment`).
///
/// Only regular files count (symbolic links and anything else are left out), named by their path
/// under `_attachments/`. Sizes are read before any content: files over the limits together are
/// refused whole, with a line in the log saying so, and nothing is read.
enum Attachments {
    enum Outcome: Equatable {
        /// No `_attachments/` folder, or nothing in it.
        case none
        /// The ZIP of the files.
        case archive([UInt8], count: Int)
        /// Over a limit: why.
        case refused(String)
    }

    static let folder = "_attachments"

    static func collect(workDir: String, maxBytes: Int, maxFiles: Int) -> Outcome {
        let root = workDir + "/" + folder
        var info = stat()
        guard lstat(root, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else { return .none }
        var files: [(name: String, size: Int)] = []
        var total = 0
        var pending = [""]
        while let relative = pending.popLast() {
            let directory = relative.isEmpty ? root : root + "/" + relative
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { continue }
            for name in names {
                let path = relative.isEmpty ? name : relative + "/" + name
                guard lstat(root + "/" + path, &info) == 0 else { continue }
                switch info.st_mode & S_IFMT {
                case S_IFDIR: pending.append(path)
                case S_IFREG:
                    files.append((path, Int(info.st_size)))
                    total += Int(info.st_size)
                    if files.count > maxFiles {
                        return .refused("more than \(maxFiles) files under \(folder)/; none were kept")
                    }
                    if total > maxBytes {
                        return .refused("the files under \(folder)/ hold more than \(maxBytes) bytes; none were kept")
                    }
                default: continue
                }
            }
        }
        guard !files.isEmpty else { return .none }
        var writer = ZipWriter()
        for file in files.sorted(by: { $0.name < $1.name }) {
            guard let data = FileManager.default.contents(atPath: root + "/" + file.name),
                data.count <= maxBytes
            else { return .refused("\(folder)/\(file.name) could not be read; none were kept") }
            writer.add(file.name, Array(data))
        }
        return .archive(writer.build(), count: files.count)
    }
}
