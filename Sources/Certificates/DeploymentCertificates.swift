import Crypto
import Foundation
import SwiftASN1
import X509

/// A deployment's certificates for mutual TLS between its hosts: one CA, and one certificate per
/// component signed by it (P-256 keys, ECDSA with SHA-256). Every link checks the peer's
/// certificate against the CA, so a process holding no certificate the CA signed reaches nothing.
package enum DeploymentCertificates {
    /// The components `init` makes certificates for.
    package static let components = ["scheduler", "gateway", "executor"]

    /// Writes `ca.pem` (and `ca-key.pem`, which signs further certificates and belongs offline),
    /// then `<component>.pem` and `<component>-key.pem` for each of `components`, into
    /// `directory` (created 0700; keys 0600). `hosts` are added to each certificate's subject
    /// alternative names besides `localhost`, `127.0.0.1` and the component's own name. Refuses to
    /// overwrite an existing CA.
    package static func initialize(
        directory: String, hosts: [String] = [], components: [String] = DeploymentCertificates.components,
        validDays: Int = 825
    ) throws -> [String] {
        let fm = FileManager.default
        guard !fm.fileExists(atPath: directory + "/ca.pem") else {
            throw CertificateError(
                "\(directory)/ca.pem exists already: a second CA would not trust the first's certificates")
        }
        try fm.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let now = Date()
        let until = now.addingTimeInterval(Double(validDays) * 86_400)
        let caKey = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let caName = try DistinguishedName {
            OrganizationName("Accord")
            CommonName("Accord deployment CA")
        }
        let ca = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: caKey.publicKey,
            notValidBefore: now.addingTimeInterval(-300),
            notValidAfter: until, issuer: caName, subject: caName, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: caKey.publicKey)
            }, issuerPrivateKey: caKey)
        var written = [directory + "/ca.pem"]
        try write(try ca.serializeAsPEM().pemString, to: directory + "/ca.pem", mode: 0o644)
        try write(try caKey.serializeAsPEM().pemString, to: directory + "/ca-key.pem", mode: 0o600)
        for component in components {
            let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
            var names: [GeneralName] = [
                .dnsName(component + ".accord"), .dnsName("localhost"),
                .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])),
            ]
            for host in hosts {
                if let address = ipv4(host) {
                    names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(address))))
                }
                names.append(.dnsName(host))
            }
            let certificate = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: key.publicKey,
                notValidBefore: now.addingTimeInterval(-300), notValidAfter: until, issuer: caName,
                subject: try DistinguishedName {
                    OrganizationName("Accord")
                    CommonName(component + ".accord")
                }, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true, keyAgreement: true))
                    try ExtendedKeyUsage([.serverAuth, .clientAuth])
                    SubjectAlternativeNames(names)
                    AuthorityKeyIdentifier(keyIdentifier: try ca.extensions.subjectKeyIdentifier?.keyIdentifier)
                }, issuerPrivateKey: caKey)
            try write(try certificate.serializeAsPEM().pemString, to: "\(directory)/\(component).pem", mode: 0o644)
            try write(try key.serializeAsPEM().pemString, to: "\(directory)/\(component)-key.pem", mode: 0o600)
            written += ["\(directory)/\(component).pem", "\(directory)/\(component)-key.pem"]
        }
        return written
    }

    private static func ipv4(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false).compactMap { UInt8($0) }
        return parts.count == 4 && text.split(separator: ".").count == 4 ? parts : nil
    }

    private static func write(_ text: String, to path: String, mode: Int) throws {
        guard
            FileManager.default.createFile(
                atPath: path, contents: Data((text + "\n").utf8), attributes: [.posixPermissions: mode])
        else { throw CertificateError("cannot write \(path)") }
    }
}

package struct CertificateError: Error, CustomStringConvertible {
    package var description: String
    init(_ description: String) { self.description = description }
}
