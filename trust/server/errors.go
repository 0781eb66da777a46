package server

import (
	"net/http"

	"github.com/docker/distribution/registry/api/errcode"
	notaryerrors "github.com/theupdateframework/notary/server/errors"
)

// Error codes. The notary ones keep the JSON the notary client parses;
// signet adds codes for limits, names and access.
var (
	errMalformedUpload = notaryerrors.ErrMalformedUpload
	errMalformedJSON   = notaryerrors.ErrMalformedJSON
	errNoFilename      = notaryerrors.ErrNoFilename
	errInvalidRole     = notaryerrors.ErrInvalidRole
	errInvalidUpdate   = notaryerrors.ErrInvalidUpdate
	errOldVersion      = notaryerrors.ErrOldVersion
	errNotFound        = notaryerrors.ErrMetadataNotFound
	errUpdating        = notaryerrors.ErrUpdating
	errInvalidParams   = notaryerrors.ErrInvalidParams
	errUnknown         = errcode.ErrorCodeUnknown

	errTooLarge = errcode.Register("signet", errcode.ErrorDescriptor{
		Value: "SIGNET_TOO_LARGE", Message: "request or metadata too large",
		Description:    "The request or one metadata file is over the server's size limit.",
		HTTPStatusCode: http.StatusRequestEntityTooLarge,
	})
	errInvalidName = errcode.Register("signet", errcode.ErrorDescriptor{
		Value: "SIGNET_INVALID_NAME", Message: "invalid repository or role name",
		Description:    "The repository (GUN) or role name in the path is not valid.",
		HTTPStatusCode: http.StatusBadRequest,
	})
	errGUNNotAllowed = errcode.Register("signet", errcode.ErrorDescriptor{
		Value: "SIGNET_GUN_NOT_ALLOWED", Message: "repository not served here",
		Description:    "The repository is outside the server's allow-list of prefixes.",
		HTTPStatusCode: http.StatusForbidden,
	})
	errBusy = errcode.Register("signet", errcode.ErrorDescriptor{
		Value: "SIGNET_BUSY", Message: "server busy",
		Description:    "Updates in flight hold the server's memory limit; retry after the Retry-After seconds.",
		HTTPStatusCode: http.StatusServiceUnavailable,
	})
	errImportDisabled = errcode.Register("signet", errcode.ErrorDescriptor{
		Value: "SIGNET_IMPORT_DISABLED", Message: "import is off",
		Description:    "The server was started without --allow-import.",
		HTTPStatusCode: http.StatusNotFound,
	})
	errImportConflict = errcode.Register("signet", errcode.ErrorDescriptor{
		Value: "SIGNET_IMPORT_CONFLICT", Message: "import conflicts with stored trust data",
		Description:    "The server holds other bytes for a role and version of the import, or newer data under an older timestamp.",
		HTTPStatusCode: http.StatusConflict,
	})
	errUnauthorized = errcode.ErrorCodeUnauthorized
	errDenied       = errcode.ErrorCodeDenied
	errMethod       = errcode.Register("signet", errcode.ErrorDescriptor{
		Value: "SIGNET_METHOD_NOT_ALLOWED", Message: "method not allowed",
		Description:    "The HTTP method is not supported on this path.",
		HTTPStatusCode: http.StatusMethodNotAllowed,
	})
)

// writeError answers with the distribution/notary error JSON:
// {"errors":[{"code":..., "message":..., "detail":...}]}.
func writeError(w http.ResponseWriter, err error) {
	w.Header().Set("Cache-Control", "no-store")
	_ = errcode.ServeJSON(w, err)
}
