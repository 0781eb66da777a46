package publish

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
)

type v1Index = v1.ImageIndex

var emptyIdx = empty.Index
