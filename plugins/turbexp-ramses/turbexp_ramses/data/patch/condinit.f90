!=======================================================================
! turbexp patch for RAMSES: initial conditions of decaying isothermal
! turbulence.
!
! Density and pressure come from the namelist's &INIT_PARAMS region
! (RAMSES's own region_condinit).  The velocity of every cell is taken
! from the file turbexp_ic.dat in the run directory, written by the
! turbexp Python package:
!
!   access='stream', form='unformatted', little-endian (native on x86
!   and ARM), no record markers:
!     int32   n                 cells per side of the IC grid
!     float64 vx(n,n,n)         code velocity units, Fortran order,
!     float64 vy(n,n,n)         first index along x; IC cell (i,j,k)
!     float64 vz(n,n,n)         covers x in [(i-1),i]*boxlen/n, etc.
!
! The file is read once per MPI rank (every rank reads the whole file)
! and kept in memory.  A missing, truncated or malformed file stops the
! run with a non-zero exit code; the run never starts with zero velocity.
!=======================================================================
module turbexp_ic
  use amr_parameters, only: dp
  implicit none
  private
  public :: turbexp_ic_velocity

  character(len=*), parameter :: ic_file = 'turbexp_ic.dat'
  logical, save :: loaded = .false.
  integer, save :: n_ic = 0
  ! v_ic(i,j,k,c): component c (1=x, 2=y, 3=z) of IC cell (i,j,k)
  real(dp), allocatable, save :: v_ic(:,:,:,:)

contains

  !---------------------------------------------------------------------
  ! Velocity (code units) of the IC cell containing user-unit position
  ! x(1:ndim), x in [0,boxlen].  Loads the file on the first call.
  !---------------------------------------------------------------------
  subroutine turbexp_ic_velocity(x, v)
    use amr_parameters, only: ndim, boxlen
    real(dp), intent(in)  :: x(ndim)
    real(dp), intent(out) :: v(ndim)
    integer :: idx(3), d

    if (.not. loaded) call load_ic
    idx = 1
    do d = 1, ndim
       idx(d) = int(x(d) / boxlen * dble(n_ic)) + 1
       idx(d) = max(1, min(n_ic, idx(d)))
    end do
    do d = 1, ndim
       v(d) = v_ic(idx(1), idx(2), idx(3), d)
    end do
  end subroutine turbexp_ic_velocity

  !---------------------------------------------------------------------
  ! Read turbexp_ic.dat into v_ic, checking its size against n.
  !---------------------------------------------------------------------
  subroutine load_ic
    use iso_fortran_env, only: int32, int64, real64
    use amr_commons, only: myid
    use amr_parameters, only: ndim, nx, levelmin
    logical :: exists
    integer :: unit, ios, c
    integer(int32) :: n32
    integer(int64) :: fsize, expected
    real(real64), allocatable :: buf(:,:,:)
    character(len=256) :: msg

    if (ndim /= 3) call ic_abort('the turbexp patch needs NDIM=3')

    inquire(file=ic_file, exist=exists, size=fsize)
    if (.not. exists) call ic_abort('initial velocity file '//ic_file// &
         ' not found in the run directory')

    open(newunit=unit, file=ic_file, access='stream', form='unformatted', &
         status='old', action='read', iostat=ios)
    if (ios /= 0) call ic_abort('cannot open '//ic_file)

    read(unit, iostat=ios) n32
    if (ios /= 0) call ic_abort('cannot read the cell count n from '//ic_file)
    if (n32 < 1 .or. n32 > 8192) then
       write(msg, '(A,I0,A)') 'bad cell count n = ', n32, ' in '//ic_file// &
            ' (wrong endianness or not a turbexp IC file?)'
       call ic_abort(trim(msg))
    end if
    ! 4 bytes for n, then three float64 arrays of n**3
    expected = 4_int64 + 3_int64 * 8_int64 * int(n32, int64)**3
    if (fsize >= 0 .and. fsize /= expected) then
       write(msg, '(A,I0,A,I0,A,I0)') ic_file//' has ', fsize, &
            ' bytes, expected ', expected, ' for n = ', n32
       call ic_abort(trim(msg))
    end if

    n_ic = n32
    allocate(v_ic(n_ic, n_ic, n_ic, 3), buf(n_ic, n_ic, n_ic))
    do c = 1, 3
       read(unit, iostat=ios) buf
       if (ios /= 0) call ic_abort('read error (truncated file?) in '//ic_file)
       v_ic(:,:,:,c) = real(buf, dp)
    end do
    close(unit)
    deallocate(buf)
    loaded = .true.

    if (myid == 1) then
       write(*,'(A,I0,A,ES12.5)') ' turbexp condinit: read '//ic_file// &
            ', n = ', n_ic, ', rms |v| = ', &
            sqrt(sum(v_ic**2) / dble(n_ic)**3)
       if (n_ic /= nx * 2**levelmin) write(*,'(A,I0,A,I0)') &
            ' turbexp condinit: WARNING: IC grid n = ', n_ic, &
            ' differs from the base grid ', nx * 2**levelmin
    end if
  end subroutine load_ic

  !---------------------------------------------------------------------
  ! Stop the whole run with a message and a non-zero exit code.
  ! (RAMSES's clean_stop exits with status 0 in non-MPI builds.)
  !---------------------------------------------------------------------
  subroutine ic_abort(msg)
    use iso_fortran_env, only: error_unit, output_unit
    use amr_commons, only: myid
    use mpi_mod
    character(len=*), intent(in) :: msg
#ifndef WITHOUTMPI
    integer :: info
#endif
    write(output_unit, '(A,I0,A)') ' turbexp condinit ERROR (rank ', myid, &
         '): '//msg
    write(error_unit, '(A,I0,A)') ' turbexp condinit ERROR (rank ', myid, &
         '): '//msg
    flush(output_unit)
    flush(error_unit)
#ifndef WITHOUTMPI
    call MPI_ABORT(MPI_COMM_WORLD, 1, info)
#endif
    stop 1
  end subroutine ic_abort

end module turbexp_ic

!=======================================================================
! RAMSES hook, same interface as hydro/condinit.f90.
! x(i,1:ndim): cell centres in user units, [0,boxlen]**ndim.
! u(i,:): conservative variables d, d*v, E, (non-thermal energies),
! d*scalars -- the same conversion as RAMSES's default condinit.
!=======================================================================
subroutine condinit(x,u,dx,nn)
  use amr_parameters
  use hydro_parameters
  use turbexp_ic, only: turbexp_ic_velocity
  implicit none
  integer :: nn                                ! number of cells
  real(dp) :: dx                               ! cell size (user units)
  real(dp), dimension(1:nvector,1:nvar) :: u   ! conservative variables
  real(dp), dimension(1:nvector,1:ndim) :: x   ! cell centres
  real(dp), dimension(1:nvector,1:nvar) :: q   ! primitive variables
  real(dp) :: v(1:ndim)
  integer :: i, idim
#if NENER>0 || NVAR>NDIM+2+NENER
  integer :: ivar
#endif

  ! Density, pressure (and scalars) from the namelist region
  call region_condinit(x,q,dx,nn)

  ! Velocity from the turbexp IC file (replaces the region velocity)
  do i = 1, nn
     call turbexp_ic_velocity(x(i,1:ndim), v)
     q(i,2:ndim+1) = v(1:ndim)
  end do

  ! Primitive -> conservative
  u(1:nn,1) = q(1:nn,1)
  u(1:nn,ndim+2) = 0.0d0
  do idim = 1, ndim
     u(1:nn,idim+1) = q(1:nn,1)*q(1:nn,idim+1)
     u(1:nn,ndim+2) = u(1:nn,ndim+2) + 0.5d0*q(1:nn,1)*q(1:nn,idim+1)**2
  end do
  u(1:nn,ndim+2) = u(1:nn,ndim+2) + q(1:nn,ndim+2)/(gamma-1.0d0)
#if NENER>0
  do ivar = 1, nener
     u(1:nn,ndim+2+ivar) = q(1:nn,ndim+2+ivar)/(gamma_rad(ivar)-1.0d0)
     u(1:nn,ndim+2) = u(1:nn,ndim+2) + u(1:nn,ndim+2+ivar)
  end do
#endif
#if NVAR>NDIM+2+NENER
  do ivar = ndim+3+nener, nvar
     u(1:nn,ivar) = q(1:nn,1)*q(1:nn,ivar)
  end do
#endif

end subroutine condinit
