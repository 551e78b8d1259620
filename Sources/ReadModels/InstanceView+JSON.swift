import JSON
import Model

extension InstanceView {
    /// The JSON `JSONEncoder` with the house settings writes for this view (sorted keys, slashes
    /// unescaped), written by hand: a Gateway writes every view it folds to its store, and
    /// `JSONEncoder` was a quarter of its CPU while it folded ten million instances. Nil when a
    /// value needs `JSONEncoder` (a fraction in `out`) or for a view with attachments (rare).
    package var fastJSON: [UInt8]? {
        guard attachments == nil else { return nil }
        var out = JSONWriter(capacity: 256 + history.count * 64 + eventSeqs.count * 8)
        let written = out.object { out in
            out.field("createdAt", createdAt.millis)
            out.field("error", error)
            out.key("eventSeqs")
            out.array(eventSeqs) { $0.bytes += $1.description.utf8 }
            out.key("history")
            out.array(history) { writer, entry in
                _ = writer.object {
                    $0.field("at", entry.at.millis)
                    $0.field("reason", entry.reason)
                    $0.field("status", entry.status.rawValue)
                    return true
                }
            }
            out.field("id", id.description)
            out.field("lastChangeAt", lastChangeAt.millis)
            if let values = self.out, !out.field("out", object: values) { return false }
            out.field("parentInstanceId", parentInstanceId?.description)
            out.field("status", status.rawValue)
            out.field("tags", strings: tags)
            out.field("team", team)
            return true
        }
        return written ? out.bytes : nil
    }
}
