/* Shared by the shapes files of data/ (not part of data.h). */
#ifndef DALLEC_SHAPES_INTERNAL_H
#define DALLEC_SHAPES_INTERNAL_H

/* Object sides as fractions of S: small, large, pair. */
void shapes_size_fracs(int S, float f[3]);
/* Is (u, v) of the unit box inside shape? */
int shapes_inside(int shape, float u, float v);

#endif
